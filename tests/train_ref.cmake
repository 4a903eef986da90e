# Decoder backward vs PyTorch autograd (issue 4): loss to 1e-5, every gradient to 1e-4 abs.
foreach(fam llama qwen2 qwen3 gemma3)
  add_test(NAME grad_${fam} COMMAND sh ${CMAKE_CURRENT_SOURCE_DIR}/ref/run_grad_tests.sh ${fam})
  set_tests_properties(grad_${fam} PROPERTIES ENVIRONMENT "${TN_TEST_ENV}" TIMEOUT 600 LABELS "ref")
endforeach()
