# Installs the build into a fresh prefix, builds tiny.c against it with
# pkg-config, and runs it. Arguments: BUILD_DIR SOURCE_DIR PREFIX CFLAGS.
file(REMOVE_RECURSE ${PREFIX})
execute_process(COMMAND ${CMAKE_COMMAND} --install ${BUILD_DIR} --prefix ${PREFIX}
    RESULT_VARIABLE rc OUTPUT_QUIET)
if(rc)
    message(FATAL_ERROR "cmake --install failed: ${rc}")
endif()
foreach(f bin/mpb bin/mpb-worker include/mpbatch/mpbatch.h include/mpbatch/worker.h
          lib/mpbatch/mpb_passthrough.so lib/mpbatch/mpb_mlp.so lib/pkgconfig/mpbatch.pc)
    if(NOT EXISTS ${PREFIX}/${f})
        message(FATAL_ERROR "not installed: ${f}")
    endif()
endforeach()
set(ENV{PKG_CONFIG_PATH} ${PREFIX}/lib/pkgconfig)
execute_process(COMMAND pkg-config --cflags --libs mpbatch
    OUTPUT_VARIABLE flags RESULT_VARIABLE rc OUTPUT_STRIP_TRAILING_WHITESPACE)
if(rc)
    message(FATAL_ERROR "pkg-config mpbatch failed")
endif()
separate_arguments(flags UNIX_COMMAND "${flags}")
separate_arguments(extra UNIX_COMMAND "${CFLAGS}")
execute_process(COMMAND cc -std=c11 -Wall -Werror ${extra} ${SOURCE_DIR}/tests/install/tiny.c
    ${flags} -o ${PREFIX}/tiny RESULT_VARIABLE rc)
if(rc)
    message(FATAL_ERROR "compiling tiny.c against the installed mpbatch failed")
endif()
execute_process(COMMAND ${PREFIX}/tiny RESULT_VARIABLE rc OUTPUT_VARIABLE out)
if(rc OR NOT out MATCHES "tiny: ok")
    message(FATAL_ERROR "tiny failed (${rc}): ${out}")
endif()
file(REMOVE_RECURSE ${PREFIX})
