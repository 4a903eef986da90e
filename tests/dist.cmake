# dist.cmake - issue 20: data-parallel training over MPI (src/dist), each test a Python script that
# runs `mpirun -np 2 --oversubscribe` on loopback (OMP_NUM_THREADS=1 per rank) against one process.
# Skipped (77) when tunic was built without MPI or mpirun is missing. Seconds on tiny models.
function(tn_dist_test name)
  add_test(NAME ${name} COMMAND /usr/bin/python3 ${CMAKE_CURRENT_SOURCE_DIR}/dist/${name}.py)
  set_tests_properties(${name} PROPERTIES ENVIRONMENT "${TN_TEST_ENV}" TIMEOUT 600 LABELS "dist" SKIP_RETURN_CODE 77)
  if(TN_SANITIZE)
    # Open MPI's own allocations are still held at exit (its leaks, not tunic's): under the
    # sanitizers the leak check is off for these tests only; ASan's memory errors and UBSan still fail them
    set_tests_properties(${name} PROPERTIES ENVIRONMENT "${TN_TEST_ENV};ASAN_OPTIONS=detect_leaks=0")
  endif()
endfunction()
# dist_train: sft (full and LoRA), dpo, distill and grpo: the weights equal one process at double
# batch (1e-6 relative), a checkpoint resumes on the other number of ranks, the manifest records
# the ranks, a killed rank fails the job.
tn_dist_test(dist_train)
# dist_improve: `mpirun -np 2 tunic improve` == one process at double SFT batch (round files byte
# for byte, SFT weights 1e-6), rank 0 alone writes.
tn_dist_test(dist_improve)
