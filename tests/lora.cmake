# lora.cmake - LoRA (issue 4). lora_grads: A/B gradients of adapters made in PEFT's layout
# (tests/lora/peft_io.py) vs PyTorch autograd, every family. test_lora (cmocka, from
# tests/test_lora.c) covers dropout, the three-ways logits check, the PEFT layout (with the
# independent reader tests/lora/check_peft_layout.py) and bad adapters.
add_test(NAME lora_grads COMMAND sh ${CMAKE_CURRENT_SOURCE_DIR}/lora/run_lora_grad_tests.sh)
set_tests_properties(lora_grads PROPERTIES ENVIRONMENT "${TN_TEST_ENV}" TIMEOUT 600 LABELS "ref")
# Several adapters by name on the command line (issue 4).
add_test(NAME lora_multi_adapter COMMAND sh ${CMAKE_CURRENT_SOURCE_DIR}/lora/multi_adapter.sh)
set_tests_properties(lora_multi_adapter PROPERTIES ENVIRONMENT "${TN_TEST_ENV}" TIMEOUT 600)
