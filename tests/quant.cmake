# quant.cmake - frozen bf16 / NF4 weights (issue 7). quant_nf4_ref: our NF4 quantisation
# (with and without double quantisation), the 8-bit dynamic map and bf16 rounding
# against an independent numpy reimplementation of bitsandbytes, bit for bit
# (tests/quant/ref_nf4.py). quant_bnb_load: a checkpoint in bitsandbytes' saved 4-bit
# layout, written by tests/quant/bnb_ckpt.py, read by `tunic logits` and compared with
# the f32 model of the same dequantised weights. The kernels and the f32/bf16/nf4 model
# checks are the cmocka test test_quant.
add_test(NAME quant_nf4_ref
         COMMAND /usr/bin/python3 ${CMAKE_CURRENT_SOURCE_DIR}/quant/ref_nf4.py
                 $<TARGET_FILE:test_quant> ${CMAKE_CURRENT_BINARY_DIR}/quant_dump)
set_tests_properties(quant_nf4_ref PROPERTIES ENVIRONMENT "${TN_TEST_ENV}" TIMEOUT 600)
add_test(NAME quant_bnb_load
         COMMAND /usr/bin/python3 ${CMAKE_CURRENT_SOURCE_DIR}/quant/bnb_ckpt.py
                 $<TARGET_FILE:tunic> ${CMAKE_CURRENT_BINARY_DIR}/quant_bnb)
set_tests_properties(quant_bnb_load PROPERTIES ENVIRONMENT "${TN_TEST_ENV}" TIMEOUT 600)
