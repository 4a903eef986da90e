# e2e.cmake - end-to-end tests of the CLI (issues 2 and 4), scripts in tests/e2e/ run by
# /usr/bin/python3 against the built `tunic` (env TUNIC / TN_BUILD): broken checkpoints,
# SFT resume after SIGKILL, gradient accumulation, overfitting and the loss mask (against
# tests/ref/hf_decoder.py), NaN stops, run configs, bad data. Each is a few seconds on tiny models.
# Issues 12 and 14: the run directory of all four trainers (one driver): run_dir; SIGKILL +
# --resume at random points (kill_resume: TN_KILLS kills per trainer, 3 here, 20 in `make
# test-long`); injected write/fsync/rename faults and damaged checkpoints (ckpt_faults).
set(TN_E2E_TESTS bad_model bad_input resume sft_numerics sft_nan sft_config sft_bad_data run_dir kill_resume ckpt_faults inputs json_fields)
foreach(t ${TN_E2E_TESTS})
  add_test(NAME e2e_${t} COMMAND /usr/bin/python3 ${CMAKE_CURRENT_SOURCE_DIR}/e2e/${t}.py)
  set_tests_properties(e2e_${t} PROPERTIES ENVIRONMENT "${TN_TEST_ENV}" TIMEOUT 600 LABELS "e2e")
endforeach()
