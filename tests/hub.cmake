# hub.cmake - `tunic pull` and ORG/NAME model ids (issue 21) against a Hub stand-in served on
# 127.0.0.1 by the test itself (tests/hub/hub_server.py); the cache is checked by an independent
# reader of huggingface_hub's layout rules (tests/hub/hf_cache_check.py).
add_test(NAME hub_pull COMMAND /usr/bin/python3 ${CMAKE_CURRENT_SOURCE_DIR}/hub/pull.py)
set_tests_properties(hub_pull PROPERTIES ENVIRONMENT "${TN_TEST_ENV}" TIMEOUT 300 LABELS "e2e")
