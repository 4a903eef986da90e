# Template tests: @huggingface/jinja renders every template of tests/template (and the npm
# tokenizer packages' chat templates) over tests/template/cases.json into ${CMAKE_BINARY_DIR}/tplref
# (template_refgen); test_template_ref renders the same with tunic and compares byte for byte.
find_program(TN_NODE node)
if(TN_NODE)
  add_test(NAME template_refgen
           COMMAND ${TN_NODE} ${CMAKE_SOURCE_DIR}/tests/template/reference.mjs ${CMAKE_SOURCE_DIR} ${CMAKE_BINARY_DIR}/tplref)
  set_tests_properties(template_refgen PROPERTIES FIXTURES_SETUP tplref SKIP_RETURN_CODE 77 TIMEOUT 300)
  if(TEST test_template_ref)
    set_tests_properties(test_template_ref PROPERTIES FIXTURES_REQUIRED tplref)
  endif()
  add_test(NAME template_cli
           COMMAND sh ${CMAKE_SOURCE_DIR}/tests/template/cli.sh $<TARGET_FILE:tunic> ${CMAKE_SOURCE_DIR})
  set_tests_properties(template_cli PROPERTIES SKIP_RETURN_CODE 77 TIMEOUT 300)
endif()
