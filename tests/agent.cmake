# agent.cmake - tools and environments of agentic episodes (issue 16, src/agent):
# agent_env_test: --env-cmd environments (good, out of order, dying, hanging, garbage, errors)
#   from many threads, the math / high_card_duel / frozenlake environments, concurrent tool
#   calls (calculator, python, the SDK's MCP server);
# agent_calculator: the calculator against Python's exact Fraction arithmetic;
# agent_sandbox: the python sandbox's containment (loop, fork bomb, memory bomb, socket,
#   writes outside, 100 MB output), with network namespaces and with the seccomp fallback;
# agent_mcp: `tunic tool list/run --mcp` against a real MCP server (@modelcontextprotocol/sdk);
# agent_data_tools: `tunic data math --tools` (answers by Python, trajectories, rendering).
add_executable(agent_env_test ${CMAKE_CURRENT_SOURCE_DIR}/agent/agent_env_test.c)
target_link_libraries(agent_env_test PRIVATE tunic_static)
add_test(NAME agent_env_test COMMAND agent_env_test)
set_tests_properties(agent_env_test PROPERTIES ENVIRONMENT "${TN_TEST_ENV}" TIMEOUT 120)
foreach(t calculator sandbox mcp data_tools)
  add_test(NAME agent_${t} COMMAND /usr/bin/python3 ${CMAKE_CURRENT_SOURCE_DIR}/agent/check_${t}.py)
  set_tests_properties(agent_${t} PROPERTIES ENVIRONMENT "${TN_TEST_ENV}" TIMEOUT 120 SKIP_RETURN_CODE 77)
endforeach()
