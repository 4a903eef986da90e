# improve.cmake - judges and the self-improvement loop (issue 17):
# judge_cli: tunic judge with the reward library (scores recomputed in Python), a tiny random
# model as judge (parse rate), and the human judge driven under tmux (quit, resume).
add_test(NAME judge_cli COMMAND /usr/bin/python3 ${CMAKE_CURRENT_SOURCE_DIR}/improve/check_judge.py
                                ${CMAKE_CURRENT_BINARY_DIR}/judge_cli_work)
set_tests_properties(judge_cli PROPERTIES ENVIRONMENT "${TN_TEST_ENV}" TIMEOUT 300)
# improve_cli: tunic improve on a tiny random model: manifests (counts, sha256), reports (McNemar
# recomputed), and a run killed with SIGKILL again and again then resumed ends identical.
add_test(NAME improve_cli COMMAND /usr/bin/python3 ${CMAKE_CURRENT_SOURCE_DIR}/improve/check_improve.py
                                  ${CMAKE_CURRENT_BINARY_DIR}/improve_cli_work)
set_tests_properties(improve_cli PROPERTIES ENVIRONMENT "${TN_TEST_ENV}" TIMEOUT 600)
# grpo_eval: grpo --eval-data/--eval-every logs eval/accuracy; the last equals a separate eval.
add_test(NAME grpo_eval COMMAND /usr/bin/python3 ${CMAKE_CURRENT_SOURCE_DIR}/improve/check_grpo_eval.py
                                ${CMAKE_CURRENT_BINARY_DIR}/grpo_eval_work)
set_tests_properties(grpo_eval PROPERTIES ENVIRONMENT "${TN_TEST_ENV}" TIMEOUT 300)
# improve_stack: sft --base-adapter == sft on the merged model (bytes); improve --adapters stack
# concatenates the rounds' adapters (deltas recomputed with numpy, logits vs tunic merge twice).
add_test(NAME improve_stack COMMAND /usr/bin/python3 ${CMAKE_CURRENT_SOURCE_DIR}/improve/check_stack.py
                                    ${CMAKE_CURRENT_BINARY_DIR}/improve_stack_work)
set_tests_properties(improve_stack PROPERTIES ENVIRONMENT "${TN_TEST_ENV}" TIMEOUT 300)
