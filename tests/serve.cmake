# serve.cmake - tests of `tunic serve` (issue 18), each starting the server on 127.0.0.1 with a
# free port and a tiny Qwen3 model (`tunic init` with the real Qwen3 tokenizer from .cache/npm):
#   serve_limits  raw HTTP (Python http.client): limits, errors, 429, disconnects, timeout, auth,
#                 SIGTERM, adapters at run time, routing, and the numbers against tunic generate
#   serve_openai  the official `openai` npm client: chat, streaming, tools, completions, models, errors
#   serve_penalties  frequency/presence penalties: tunic generate against numpy applying OpenAI's formula
#                 to `tunic logits`, and the server's numbers against tunic generate's
#   serve_classify  the "auto" route's classifier: a router adapter trained by the test (tunic sft) routes
#                 held-out prompts; scores against tunic logits + numpy; keywords first; bad route files
#   serve_page    the chat page in headless Debian chromium (puppeteer-core): type, see the
#                 streamed answer; screenshot in ${CMAKE_BINARY_DIR}/serve_page/
# The node tests skip (77) when their npm packages or chromium are missing.
add_test(NAME serve_limits COMMAND /usr/bin/python3 ${CMAKE_CURRENT_SOURCE_DIR}/serve/limits.py)
set_tests_properties(serve_limits PROPERTIES ENVIRONMENT "${TN_TEST_ENV}" TIMEOUT 600 SKIP_RETURN_CODE 77 LABELS "serve")
add_test(NAME serve_penalties COMMAND /usr/bin/python3 ${CMAKE_CURRENT_SOURCE_DIR}/serve/penalties.py)
set_tests_properties(serve_penalties PROPERTIES ENVIRONMENT "${TN_TEST_ENV}" TIMEOUT 300 SKIP_RETURN_CODE 77 LABELS "serve")
add_test(NAME serve_classify COMMAND /usr/bin/python3 ${CMAKE_CURRENT_SOURCE_DIR}/serve/classify.py)
set_tests_properties(serve_classify PROPERTIES ENVIRONMENT "${TN_TEST_ENV}" TIMEOUT 300 SKIP_RETURN_CODE 77 LABELS "serve")
find_program(TN_NODE_SERVE node)
if(TN_NODE_SERVE)
  add_test(NAME serve_openai COMMAND /usr/bin/python3 ${CMAKE_CURRENT_SOURCE_DIR}/serve/run_node.py
           ${CMAKE_CURRENT_SOURCE_DIR}/serve/client.mjs ${CMAKE_BINARY_DIR}/serve_openai)
  set_tests_properties(serve_openai PROPERTIES ENVIRONMENT "${TN_TEST_ENV}" TIMEOUT 600 SKIP_RETURN_CODE 77 LABELS "serve")
  add_test(NAME serve_page COMMAND /usr/bin/python3 ${CMAKE_CURRENT_SOURCE_DIR}/serve/run_node.py
           ${CMAKE_CURRENT_SOURCE_DIR}/serve/page.mjs ${CMAKE_BINARY_DIR}/serve_page)
  set_tests_properties(serve_page PROPERTIES ENVIRONMENT "${TN_TEST_ENV}" TIMEOUT 600 SKIP_RETURN_CODE 77 LABELS "serve")
endif()
