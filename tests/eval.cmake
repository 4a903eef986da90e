# eval.cmake - `tunic eval` and `tunic report` end to end (issue 5, Evaluation):
# eval_cli runs eval on a tiny random byte-tokenizer model and checks the results file, the
# summary (recomputed in Python), pass@k (math.comb), seed determinism, stop ids, errors, with
# completions cross-checked against `tunic generate` on prompts rendered in Python;
# report_cli runs report on hand-written results files with known flips (McNemar, Wilson,
# deltas computed in Python) and checks the gnuplot PNGs and error messages.
# OMP_WAIT_POLICY=passive: these runs are short; spinning OpenMP threads only slow them down
# when the machine is busy.
add_test(NAME eval_cli COMMAND /usr/bin/python3 ${CMAKE_CURRENT_SOURCE_DIR}/eval_cli/check_eval.py
                               ${CMAKE_CURRENT_BINARY_DIR}/eval_cli_work)
set_tests_properties(eval_cli PROPERTIES ENVIRONMENT "${TN_TEST_ENV};OMP_WAIT_POLICY=passive" TIMEOUT 600)
add_test(NAME report_cli COMMAND /usr/bin/python3 ${CMAKE_CURRENT_SOURCE_DIR}/eval_cli/check_report.py
                                 ${CMAKE_CURRENT_BINARY_DIR}/report_cli_work)
set_tests_properties(report_cli PROPERTIES ENVIRONMENT "${TN_TEST_ENV}" TIMEOUT 600)
# conventions_ref: the case table of test_conventions.c (GSM8K / MATH rules) recomputed with
# Python's `re` on lm-evaluation-harness's patterns and a transcription of Hendrycks' normaliser.
add_test(NAME conventions_ref COMMAND /usr/bin/python3 ${CMAKE_CURRENT_SOURCE_DIR}/eval_cli/conventions_ref.py
                                      ${CMAKE_CURRENT_SOURCE_DIR}/test_conventions.c)
# eval_completions: `tunic eval --completions` on 40 x 12 made-up completions; pass@k against math.comb.
add_test(NAME eval_completions COMMAND /usr/bin/python3 ${CMAKE_CURRENT_SOURCE_DIR}/eval_cli/check_completions.py
                                       ${CMAKE_CURRENT_BINARY_DIR}/eval_completions_work)
set_tests_properties(eval_completions PROPERTIES ENVIRONMENT "${TN_TEST_ENV}" TIMEOUT 120)
# report_multi: `tunic report --evals a,b,c` against closed forms (Wilson, exact McNemar) in Python.
add_test(NAME report_multi COMMAND /usr/bin/python3 ${CMAKE_CURRENT_SOURCE_DIR}/eval_cli/check_report_multi.py
                                   ${CMAKE_CURRENT_BINARY_DIR}/report_multi_work)
set_tests_properties(report_multi PROPERTIES ENVIRONMENT "${TN_TEST_ENV}" TIMEOUT 120)
# eval_textmetrics: reference-free rows of eval --completions: text metrics against a Python
# reference per --categorize category; --classifier with a tiny model.
add_test(NAME eval_textmetrics COMMAND /usr/bin/python3 ${CMAKE_CURRENT_SOURCE_DIR}/eval_cli/check_textmetrics.py
                                       ${CMAKE_CURRENT_BINARY_DIR}/eval_textmetrics_work)
set_tests_properties(eval_textmetrics PROPERTIES ENVIRONMENT "${TN_TEST_ENV}" TIMEOUT 300)
# eval_checkpoints: tunic eval --checkpoints RUN on a tiny SFT run, each point equal to a separate eval.
add_test(NAME eval_checkpoints COMMAND /usr/bin/python3 ${CMAKE_CURRENT_SOURCE_DIR}/eval_cli/check_checkpoints.py
                                       ${CMAKE_CURRENT_BINARY_DIR}/eval_checkpoints_work)
set_tests_properties(eval_checkpoints PROPERTIES ENVIRONMENT "${TN_TEST_ENV}" TIMEOUT 300)
