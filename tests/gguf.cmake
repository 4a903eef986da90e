# gguf.cmake - `tunic export --gguf` (issue 21) checked by llama.cpp itself: the prebuilt
# llama.cpp of the npm package node-llama-cpp (scripts/test-setup.d/llama_cpp.sh) loads the
# f32/bf16/q8_0/q4_0 files, tokenizes a corpus as tunic does, continues greedily as tunic does
# (f32, bf16) and gives tunic's log-probabilities within q8_0's tolerance; an independent GGUF
# reader checks the layout, the values and ggml's q8_0/q4_0 blocks bit for bit
# (tests/gguf/gguf_llama.py). One test per family and tokenizer; skipped (77) without node.
find_program(TN_NODE_GGUF node)
if(TN_NODE_GGUF)
  foreach(c llama_l3 qwen3_q3 gemma3_g3 qwen2_bytes llama_bytes gemma3_bytes)
    add_test(NAME gguf_llama_${c}
             COMMAND /usr/bin/python3 ${CMAKE_CURRENT_SOURCE_DIR}/gguf/gguf_llama.py $<TARGET_FILE:tunic>
                     ${CMAKE_SOURCE_DIR}/.cache/npm ${CMAKE_CURRENT_BINARY_DIR}/gguf_${c} ${c})
    set_tests_properties(gguf_llama_${c} PROPERTIES ENVIRONMENT "${TN_TEST_ENV}" SKIP_RETURN_CODE 77 TIMEOUT 600)
  endforeach()
endif()
