# optim.cmake - the optimizer's trajectory check: test_optim (cmocka) writes its
# generated inputs and its results to optim_io/, then tests/optim/check_adamw.py
# recomputes them with torch.optim.AdamW + clip_grad_norm_ + a transcription of
# optax's schedules (Debian python3-torch, run by /usr/bin/python3).
set_tests_properties(test_optim PROPERTIES FIXTURES_SETUP optim_io)
add_test(NAME optim_torch_ref
         COMMAND /usr/bin/python3 ${CMAKE_CURRENT_SOURCE_DIR}/optim/check_adamw.py
                 ${CMAKE_CURRENT_BINARY_DIR}/optim_io)
set_tests_properties(optim_torch_ref PROPERTIES FIXTURES_REQUIRED optim_io
                     ENVIRONMENT "${TN_TEST_ENV};OMP_NUM_THREADS=2" TIMEOUT 600)
