/*
 * Subcommands of the `mpb` tool; each takes the arguments after its name
 * (argv[0] is the subcommand name) and returns the process exit status.
 */
#ifndef MPB_TOOLS_COMMANDS_H
#define MPB_TOOLS_COMMANDS_H

/* mpb run --config pipeline.yaml [--input FILE] */
int mpb_cmd_run(int argc, char **argv);

/* mpb runs experiments|list|show|metrics|compare ... */
int mpb_cmd_runs(int argc, char **argv);

/* mpb models register|list|show|alias ... (tools/cmd_models.c) */
int mpb_cmd_models(int argc, char **argv);

/* mpb serve --config pipeline.yaml [--bind ENDPOINT] [--http ADDR] */
int mpb_cmd_serve(int argc, char **argv);

/* mpb call --connect ENDPOINT [--health] */
int mpb_cmd_call(int argc, char **argv);
/* mpb plugins [list] | show NAME|PATH [--json] */
int mpb_cmd_plugins(int argc, char **argv);

/* mpb bench [--model P | --config SWEEP.yaml] [axes...] (tools/bench/) */
int mpb_cmd_bench(int argc, char **argv);
/* tools/cmd_keygen.c */
int mpb_cmd_keygen(int argc, char **argv);

#endif
