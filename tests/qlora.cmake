# QLoRA: LoRA SFT on NF4 / bf16 frozen bases vs the f32 base (issue 7).
add_test(NAME qlora_sft COMMAND sh ${CMAKE_CURRENT_SOURCE_DIR}/qlora/run.sh)
set_tests_properties(qlora_sft PROPERTIES ENVIRONMENT "${TN_TEST_ENV}" TIMEOUT 600)
