# Tokenizer tests: the reference outputs (transformers.js + @huggingface/jinja, node) are
# produced by tokenizer_refgen into ${CMAKE_BINARY_DIR}/tokref, then test_tokenizer_ref compares.
find_program(TN_NODE node)
if(TN_NODE)
  add_test(NAME tokenizer_refgen
           COMMAND ${TN_NODE} ${CMAKE_SOURCE_DIR}/tests/tokenizer/reference.mjs ${CMAKE_SOURCE_DIR} ${CMAKE_BINARY_DIR}/tokref)
  set_tests_properties(tokenizer_refgen PROPERTIES FIXTURES_SETUP tokref SKIP_RETURN_CODE 77 TIMEOUT 600)
  if(TEST test_tokenizer_ref)
    set_tests_properties(test_tokenizer_ref PROPERTIES FIXTURES_REQUIRED tokref)
  endif()
  add_test(NAME tokenizer_cli
           COMMAND sh ${CMAKE_SOURCE_DIR}/tests/tokenizer/cli.sh $<TARGET_FILE:tunic> ${CMAKE_SOURCE_DIR})
  set_tests_properties(tokenizer_cli PROPERTIES SKIP_RETURN_CODE 77 TIMEOUT 600)
endif()
