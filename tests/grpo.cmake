# grpo.cmake - issue 5, `tunic grpo` end to end (scripts in tests/grpo/, /usr/bin/python3 with
# Debian's PyTorch, against the built `tunic`): the step is the GRPO formula (loss, gradient of
# every weight, AdamW update, logged metrics) recomputed from the dumped rollouts with
# tests/ref/hf_decoder.py; seed reproducibility; LoRA (reference = adapter off, base untouched);
# resume after a kill; bad input. Each runs in seconds on the tiny model.
set(TN_GRPO_TESTS step_formula lora reproducible resume bad_input shared_prefix estimators ppo ppo_critic)
foreach(t ${TN_GRPO_TESTS})
  add_test(NAME grpo_${t} COMMAND /usr/bin/python3 ${CMAKE_CURRENT_SOURCE_DIR}/grpo/${t}.py)
  set_tests_properties(grpo_${t} PROPERTIES ENVIRONMENT "${TN_TEST_ENV}" TIMEOUT 600 LABELS "e2e")
endforeach()
# issue 16: multi-turn (agentic) GRPO recomputed from the dumped transcripts (tests/agent/)
add_test(NAME agent_step_formula COMMAND /usr/bin/python3 ${CMAKE_CURRENT_SOURCE_DIR}/agent/step_formula.py)
set_tests_properties(agent_step_formula PROPERTIES ENVIRONMENT "${TN_TEST_ENV}" TIMEOUT 600 LABELS "e2e")
add_test(NAME agent_ppo_multiturn COMMAND /usr/bin/python3 ${CMAKE_CURRENT_SOURCE_DIR}/agent/ppo_multiturn.py)
set_tests_properties(agent_ppo_multiturn PROPERTIES ENVIRONMENT "${TN_TEST_ENV}" TIMEOUT 600 LABELS "e2e")
add_test(NAME agent_episodes COMMAND /usr/bin/python3 ${CMAKE_CURRENT_SOURCE_DIR}/agent/episodes.py)
set_tests_properties(agent_episodes PROPERTIES ENVIRONMENT "${TN_TEST_ENV}" TIMEOUT 600 LABELS "e2e")
