# cli_opts.cmake - the trainers' shared options (src/train/opts.c) through the CLI: each
# trainer's --help lists each option once with its own default (printed once, equal to the value
# used), every command's help gives a default at most once, and a YAML config equals the same
# flags (printed configuration; for sft a real run: manifest config and losses).
add_test(NAME cli_train_opts COMMAND /usr/bin/python3 ${CMAKE_CURRENT_SOURCE_DIR}/cli_opts/train_opts.py)
set_tests_properties(cli_train_opts PROPERTIES ENVIRONMENT "${TN_TEST_ENV}" TIMEOUT 600 LABELS "e2e")
# issue 12: every numeric option of every command against its range rule in docs/options.md
# (bounds accepted, just outside / NaN / Inf refused naming the option; trainers also via YAML).
add_test(NAME cli_option_ranges COMMAND /usr/bin/python3 ${CMAKE_CURRENT_SOURCE_DIR}/cli_opts/ranges.py)
set_tests_properties(cli_option_ranges PROPERTIES ENVIRONMENT "${TN_TEST_ENV}" TIMEOUT 600 LABELS "e2e")
