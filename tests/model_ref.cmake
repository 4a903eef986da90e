# Decoder correctness against the independent PyTorch reference (tests/ref/, issue 2):
# one CTest test per family; each inits tiny checkpoints with `tunic init`, compares
# `tunic logits` (full and KV-cache --step 1/3) to tests/ref/hf_decoder.py (max abs diff <= 1e-4)
# and checks batched greedy generation == one-at-a-time. Needs Debian's python3-torch.
foreach(fam llama qwen2 qwen3 gemma3)
  add_test(NAME ref_${fam}
           COMMAND /usr/bin/python3 ${CMAKE_CURRENT_SOURCE_DIR}/ref/run_family_tests.py ${fam})
  set_tests_properties(ref_${fam} PROPERTIES ENVIRONMENT "${TN_TEST_ENV}" TIMEOUT 600
                       LABELS "ref")
endforeach()
# The reference's own checks (refusals, dtype decoding, llama3 RoPE formula, window semantics).
add_test(NAME ref_selftest COMMAND /usr/bin/python3 ${CMAKE_CURRENT_SOURCE_DIR}/ref/selftest.py)
set_tests_properties(ref_selftest PROPERTIES TIMEOUT 600 LABELS "ref")
