# mpb_add_test(<dir> <module> [SOURCES extra.c ...] [TIMEOUT seconds] [LIBS ...])
# Builds tests/<dir>/<module>_test.c into an executable linked against the
# static testing library and cmocka, registered in ctest as mpb.<dir>.<module>.
function(mpb_add_test dir module)
    cmake_parse_arguments(T "" "TIMEOUT" "SOURCES;LIBS" ${ARGN})
    if(NOT T_TIMEOUT)
        set(T_TIMEOUT 60)
    endif()
    set(target test_${dir}_${module})
    add_executable(${target} ${CMAKE_SOURCE_DIR}/tests/${dir}/${module}_test.c ${T_SOURCES})
    target_link_libraries(${target} PRIVATE mpbatch_testing PkgConfig::CMOCKA ${T_LIBS})
    target_include_directories(${target} PRIVATE ${CMAKE_SOURCE_DIR}/tests)
    set_target_properties(${target} PROPERTIES RUNTIME_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR}/tests)
    add_test(NAME mpb.${dir}.${module} COMMAND ${target})
    set(env "MPB_BUILD_DIR=${CMAKE_BINARY_DIR};MPB_SOURCE_DIR=${CMAKE_SOURCE_DIR}")
    if(MPB_SANITIZER STREQUAL "thread")
        # libzmq is not built with TSan; its internal pipes are suppressed.
        list(APPEND env "TSAN_OPTIONS=suppressions=${CMAKE_SOURCE_DIR}/tests/tsan.supp")
    endif()
    set_tests_properties(mpb.${dir}.${module} PROPERTIES TIMEOUT ${T_TIMEOUT}
        ENVIRONMENT "${env}")
endfunction()

# mpb_add_plugin(<name> sources... [LIBS ...]): build/lib/mpb_<name>.so,
# installed into <libdir>/mpbatch.
function(mpb_add_plugin name)
    cmake_parse_arguments(P "" "" "LIBS" ${ARGN})
    add_library(mpb_${name} MODULE ${P_UNPARSED_ARGUMENTS})
    set_target_properties(mpb_${name} PROPERTIES PREFIX "" C_VISIBILITY_PRESET hidden
        INSTALL_RPATH "$ORIGIN/..")
    target_link_libraries(mpb_${name} PRIVATE mpbatch ${P_LIBS})
    install(TARGETS mpb_${name} LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}/mpbatch)
endfunction()
