# Template tests: @huggingface/jinja renders every template of tests/template (and the npm
# tokenizer packages' chat templates) over tests/template/cases.json into ${CMAKE_BINARY_DIR}/tplref
# (template_refgen); Python jinja2 set up as transformers sets it up renders the same plus
# tests/template/python_cases.json (template_refgen_py, Debian python3-jinja2 under /usr/bin/python3);
# test_template_ref renders all of them with tunic and compares byte for byte.
find_program(TN_NODE node)
if(TN_NODE)
  add_test(NAME template_refgen
           COMMAND ${TN_NODE} ${CMAKE_SOURCE_DIR}/tests/template/reference.mjs ${CMAKE_SOURCE_DIR} ${CMAKE_BINARY_DIR}/tplref)
  set_tests_properties(template_refgen PROPERTIES FIXTURES_SETUP tplref SKIP_RETURN_CODE 77 TIMEOUT 300)
  if(EXISTS /usr/bin/python3)
    add_test(NAME template_refgen_py
             COMMAND /usr/bin/python3 ${CMAKE_SOURCE_DIR}/tests/template/reference_jinja2.py ${CMAKE_SOURCE_DIR} ${CMAKE_BINARY_DIR}/tplref)
    set_tests_properties(template_refgen_py PROPERTIES FIXTURES_SETUP tplref FIXTURES_REQUIRED tplref_node
                         DEPENDS template_refgen SKIP_RETURN_CODE 77 TIMEOUT 300)
    set_tests_properties(template_refgen PROPERTIES FIXTURES_SETUP "tplref;tplref_node")
  endif()
  if(TEST test_template_ref)
    set_tests_properties(test_template_ref PROPERTIES FIXTURES_REQUIRED tplref)
  endif()
  add_test(NAME template_cli
           COMMAND sh ${CMAKE_SOURCE_DIR}/tests/template/cli.sh $<TARGET_FILE:tunic> ${CMAKE_SOURCE_DIR})
  set_tests_properties(template_cli PROPERTIES SKIP_RETURN_CODE 77 TIMEOUT 300)
endif()
if(TEST test_template_sft)
  set_tests_properties(test_template_sft PROPERTIES FIXTURES_REQUIRED tplref)
endif()
