# Observability tests driven by scripts: the independent TensorBoard reader checks its own
# CRC32C against the published RFC 3720 vectors (test_obs.c then uses it on our files).
add_test(NAME obs_tfevents_reader_selftest
         COMMAND /usr/bin/python3 ${CMAKE_SOURCE_DIR}/tests/obs/tfevents.py --selftest)
set_tests_properties(obs_tfevents_reader_selftest PROPERTIES TIMEOUT 600)
