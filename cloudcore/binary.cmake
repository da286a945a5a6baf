gantry_binary(cloudcore
  SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/main.cc
  DEPS cloudcore_join cloudcore_api cloudcore_controllers cloudcore_hub cloudcore_registry cloudcore_store
       cloudcore_store_config
       gantry_net gantry_metrics gantry_base CLI11::CLI11)
