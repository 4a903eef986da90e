# QLoRA: LoRA SFT on NF4 / bf16 frozen bases vs the f32 base (issue 7).
add_test(NAME qlora_sft COMMAND sh ${CMAKE_CURRENT_SOURCE_DIR}/qlora/run.sh)
set_tests_properties(qlora_sft PROPERTIES ENVIRONMENT "${TN_TEST_ENV}" TIMEOUT 600)
# tunic merge of adapters trained on NF4 bases (an f32/bf16 checkpoint with --base-dtype nf4,
# and a bitsandbytes 4-bit checkpoint): merged logits == NF4 base + adapter, clean config.
add_test(NAME qlora_merge
         COMMAND /usr/bin/python3 ${CMAKE_CURRENT_SOURCE_DIR}/qlora/merge.py $<TARGET_FILE:tunic>
                 ${CMAKE_CURRENT_BINARY_DIR}/qlora_merge)
set_tests_properties(qlora_merge PROPERTIES ENVIRONMENT "${TN_TEST_ENV}" TIMEOUT 600)
