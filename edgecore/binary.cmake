gantry_binary(edgecore
  SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/main.cc
  DEPS edgecore_exec edgecore_pods edgecore_logs edgecore_runtime edgecore_hub edgecore_status edgecore_meta gantry_net gantry_base CLI11::CLI11)
