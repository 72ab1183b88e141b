# cmake -DFUZZER=... -DCORPUS=dir -DWORK=dir -DRUNS=n [-DDICT=file] -P run_fuzzer.cmake
#
# One bounded, reproducible libFuzzer run (the fuzz.<name> CTest tests): the seed corpus, then RUNS
# mutated inputs from seed 1. New inputs go to a fresh WORK/corpus, never into the checkout; a
# finding leaves its input in WORK (crash-*, leak-*, timeout-*, oom-*) and fails the test.
file(REMOVE_RECURSE ${WORK})
file(MAKE_DIRECTORY ${WORK}/corpus)
set(args -runs=${RUNS} -seed=1 -timeout=25 -rss_limit_mb=2048 -max_len=16384
         -print_final_stats=1 -artifact_prefix=${WORK}/)
if(DICT)
  list(APPEND args -dict=${DICT})
endif()
execute_process(COMMAND ${FUZZER} ${args} ${WORK}/corpus ${CORPUS} RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  file(GLOB found ${WORK}/crash-* ${WORK}/leak-* ${WORK}/timeout-* ${WORK}/oom-*)
  message(FATAL_ERROR "${FUZZER} found a problem (exit ${rc}); input: ${found}\n"
                      "Reproduce: ${FUZZER} <input>; tests/fuzz/README.md says how to triage.")
endif()
