# pref.cmake - issue 6: `tunic dpo` and `tunic distill` end to end (scripts in tests/pref/, run by
# /usr/bin/python3 against the built `tunic`): step-1 losses and gradient norms of every DPO
# variant and ORPO vs PyTorch (tests/ref/hf_decoder.py), data forms, truncation, references
# (frozen copy, precomputed, LoRA base); DPO/ORPO shift a tiny model's generations toward the
# chosen style; resume; distillation beats labels-only training. Each takes seconds.
set(TN_PREF_TESTS dpo_ref dpo_train distill bad_data)
foreach(t ${TN_PREF_TESTS})
  add_test(NAME pref_${t} COMMAND /usr/bin/python3 ${CMAKE_CURRENT_SOURCE_DIR}/pref/${t}.py)
  set_tests_properties(pref_${t} PROPERTIES ENVIRONMENT "${TN_TEST_ENV}" TIMEOUT 600 LABELS "pref")
endforeach()
