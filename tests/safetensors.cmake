# safetensors: an independent Python reader/writer (written from the spec, numpy only)
# checks files written by tunic, and tunic reads files written by it (check.py).
add_test(NAME safetensors_python
         COMMAND /usr/bin/python3 ${CMAKE_CURRENT_SOURCE_DIR}/safetensors/check.py
                 $<TARGET_FILE:test_safetensors> ${CMAKE_CURRENT_BINARY_DIR}/st_check)
set_tests_properties(safetensors_python PROPERTIES ENVIRONMENT "${TN_TEST_ENV}" TIMEOUT 600)
