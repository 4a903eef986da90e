# dist.cmake - issue 20: data-parallel training over MPI (src/dist). tests/dist/dist_train.py runs
# `mpirun -np 2 --oversubscribe` on loopback (OMP_NUM_THREADS=1 per rank) for sft (full and LoRA),
# dpo, distill and grpo: the weights equal one process at double batch (1e-6 relative), a checkpoint
# resumes on the other number of ranks, the manifest records the ranks, a killed rank fails the
# job. Skipped (77) when tunic was built without MPI or mpirun is missing. Seconds on tiny models.
add_test(NAME dist_train COMMAND /usr/bin/python3 ${CMAKE_CURRENT_SOURCE_DIR}/dist/dist_train.py)
set_tests_properties(dist_train PROPERTIES ENVIRONMENT "${TN_TEST_ENV}" TIMEOUT 600 LABELS "dist"
                     SKIP_RETURN_CODE 77)
if(TN_SANITIZE)
  # Open MPI's own allocations are still held at exit (its leaks, not tunic's): under the
  # sanitizers the leak check is off for this test only; ASan's memory errors and UBSan still fail it
  set_tests_properties(dist_train PROPERTIES ENVIRONMENT "${TN_TEST_ENV};ASAN_OPTIONS=detect_leaks=0")
endif()
# dist_improve: `mpirun -np 2 tunic improve` == one process at double SFT batch (round files byte for
# byte, SFT weights 1e-6), rank 0 alone writes.
add_test(NAME dist_improve COMMAND /usr/bin/python3 ${CMAKE_CURRENT_SOURCE_DIR}/dist/dist_improve.py)
set_tests_properties(dist_improve PROPERTIES ENVIRONMENT "${TN_TEST_ENV}" TIMEOUT 600 LABELS "dist"
                     SKIP_RETURN_CODE 77)
if(TN_SANITIZE)
  set_tests_properties(dist_improve PROPERTIES ENVIRONMENT "${TN_TEST_ENV};ASAN_OPTIONS=detect_leaks=0")
endif()
