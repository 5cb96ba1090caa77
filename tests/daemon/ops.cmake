# Operations: checkpoint directory, metrics format, sd_notify and
# watchdog, metrics endpoint (unit, mock cluster); signals, crash and
# restart on the real broker (integration); the systemd unit (unit).
add_executable(test_ops ${CMAKE_CURRENT_SOURCE_DIR}/test_ops.c)
target_link_libraries(test_ops PRIVATE nx_daemon nx_testkit)
add_test(NAME ops COMMAND test_ops $<TARGET_FILE:nextactd> ${PROJECT_SOURCE_DIR})
set_tests_properties(ops PROPERTIES LABELS unit TIMEOUT 120)
# /metrics of a running daemon (mock cluster) through promtool check metrics.
add_executable(test_metrics ${CMAKE_CURRENT_SOURCE_DIR}/test_metrics.c)
target_link_libraries(test_metrics PRIVATE nx_testkit)
add_test(NAME metrics COMMAND test_metrics $<TARGET_FILE:nextactd> ${PROJECT_SOURCE_DIR})
set_tests_properties(metrics PROPERTIES LABELS unit TIMEOUT 120)
add_executable(test_ops_systemd ${CMAKE_CURRENT_SOURCE_DIR}/test_ops_systemd.c)
target_link_libraries(test_ops_systemd PRIVATE nx_testkit)
add_test(NAME ops_systemd
         COMMAND test_ops_systemd ${PROJECT_BINARY_DIR} $<TARGET_FILE:nextactd>
                 ${PROJECT_BINARY_DIR}/systemd/nextactd.service ${CMAKE_INSTALL_PREFIX})
set_tests_properties(ops_systemd PROPERTIES LABELS unit TIMEOUT 120)
add_executable(test_ops_signals ${CMAKE_CURRENT_SOURCE_DIR}/test_ops_signals.c)
target_link_libraries(test_ops_signals PRIVATE nx_daemon nx_testkit)
add_test(NAME ops_signals COMMAND test_ops_signals $<TARGET_FILE:nextactd> ${PROJECT_SOURCE_DIR} 100)
set_tests_properties(ops_signals PROPERTIES FIXTURES_REQUIRED kafka LABELS integration TIMEOUT 900)
add_executable(test_ops_crash ${CMAKE_CURRENT_SOURCE_DIR}/test_ops_crash.c)
target_link_libraries(test_ops_crash PRIVATE nx_drun)
add_test(NAME ops_crash COMMAND test_ops_crash $<TARGET_FILE:nextactd> ${PROJECT_SOURCE_DIR} 300000)
set_tests_properties(ops_crash PROPERTIES FIXTURES_REQUIRED kafka LABELS integration TIMEOUT 900)
add_executable(test_ops_pause ${CMAKE_CURRENT_SOURCE_DIR}/test_ops_pause.c)
target_link_libraries(test_ops_pause PRIVATE nx_daemon nx_testkit)
add_test(NAME ops_pause COMMAND test_ops_pause 200000)
set_tests_properties(ops_pause PROPERTIES LABELS unit TIMEOUT 300)
add_executable(test_ops_state ${CMAKE_CURRENT_SOURCE_DIR}/test_ops_state.c)
target_link_libraries(test_ops_state PRIVATE nx_daemon nx_testkit)
add_test(NAME ops_state COMMAND test_ops_state $<TARGET_FILE:nextactd> ${PROJECT_SOURCE_DIR})
set_tests_properties(ops_state PROPERTIES LABELS unit TIMEOUT 180)
# The metrics endpoint against idle and slow clients, and its probes.
add_executable(test_ops_http ${CMAKE_CURRENT_SOURCE_DIR}/test_ops_http.c)
target_include_directories(test_ops_http PRIVATE ${PROJECT_SOURCE_DIR}/tests/common)
target_link_libraries(test_ops_http PRIVATE nx_daemon)
add_test(NAME ops_http COMMAND test_ops_http)
set_tests_properties(ops_http PROPERTIES LABELS unit TIMEOUT 60)
# Offsets committed only when the state they cover is durable: one ctest per
# case of test_ops_durable (real broker).
add_executable(test_ops_durable ${CMAKE_CURRENT_SOURCE_DIR}/test_ops_durable.c)
target_link_libraries(test_ops_durable PRIVATE nx_drun)
foreach(case durable_kill durable_kill_busy full_disk handover)
  add_test(NAME ops_${case}
           COMMAND test_ops_durable $<TARGET_FILE:nextactd> ${PROJECT_SOURCE_DIR} ${case})
  set_tests_properties(ops_${case} PROPERTIES FIXTURES_REQUIRED kafka LABELS integration
                       TIMEOUT 600)
endforeach()
# State in Kafka: two daemons and a SIGKILL, a restore from the changelog
# alone, garbage in the changelog (integration).
add_executable(test_changelog ${CMAKE_CURRENT_SOURCE_DIR}/test_changelog.c)
target_link_libraries(test_changelog PRIVATE nx_daemon nx_testkit)
add_test(NAME changelog COMMAND test_changelog $<TARGET_FILE:nextactd> ${PROJECT_SOURCE_DIR} 300000)
set_tests_properties(changelog PROPERTIES FIXTURES_REQUIRED kafka LABELS integration TIMEOUT 900)
# /readyz follows the broker: a mock cluster owned by the test goes down
# and comes back under a running daemon.
add_executable(test_ops_ready ${CMAKE_CURRENT_SOURCE_DIR}/test_ops_ready.c)
target_link_libraries(test_ops_ready PRIVATE nx_testkit)
add_test(NAME ops_ready COMMAND test_ops_ready $<TARGET_FILE:nextactd> ${PROJECT_SOURCE_DIR})
set_tests_properties(ops_ready PROPERTIES LABELS unit TIMEOUT 240)
# Exactly-once (kafka.transactional): kill -9 five times with one and with
# three daemons, a transaction aborted by a produce error, a fenced instance;
# a read_committed reader sees one prediction per input offset (integration,
# real broker).
add_executable(test_txn ${CMAKE_CURRENT_SOURCE_DIR}/test_txn.c)
target_link_libraries(test_txn PRIVATE nx_drun)
foreach(case kill1 kill3 abort fence)
  add_test(NAME txn_${case} COMMAND test_txn $<TARGET_FILE:nextactd> ${PROJECT_SOURCE_DIR} ${case})
  set_tests_properties(txn_${case} PROPERTIES FIXTURES_REQUIRED kafka LABELS integration
                       TIMEOUT 600)
endforeach()
# A group of daemons as one: three on 8 partitions with the changelog and
# model sync, one killed, a fourth joining; state, quality and the
# replicas' distance against one daemon alone (integration).
add_executable(test_group ${CMAKE_CURRENT_SOURCE_DIR}/test_group.c)
target_link_libraries(test_group PRIVATE nx_drun)
add_test(NAME group COMMAND test_group $<TARGET_FILE:nextactd> ${PROJECT_SOURCE_DIR} 1000000)
set_tests_properties(group PROPERTIES FIXTURES_REQUIRED kafka LABELS integration TIMEOUT 600)
