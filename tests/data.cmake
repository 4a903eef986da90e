# data.cmake - data sets as published (issue 21): GSM8K, MATH, alpaca, ShareGPT/OpenThoughts,
# UltraFeedback, Argilla DPO and TRL's formats read by sft/dpo/grpo/eval, each checked against the
# same examples hand-written in tunic's native forms; --field-map; TRL-style run configs.
add_test(NAME data_published COMMAND /usr/bin/python3 ${CMAKE_CURRENT_SOURCE_DIR}/data/published.py)
set_tests_properties(data_published PROPERTIES ENVIRONMENT "${TN_TEST_ENV}" TIMEOUT 600 LABELS "e2e")
