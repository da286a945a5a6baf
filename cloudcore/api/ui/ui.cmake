# The dashboard's assets (cloudcore/api/ui/assets: plain ES modules, no build step) embedded into
# cloudcore_api as a generated .cc, regenerated whenever an asset changes.
file(GLOB_RECURSE GANTRY_UI_ASSETS CONFIGURE_DEPENDS ${CMAKE_CURRENT_LIST_DIR}/assets/*)
set(GANTRY_UI_CC ${CMAKE_CURRENT_BINARY_DIR}/ui_assets.cc)
add_custom_command(
  OUTPUT ${GANTRY_UI_CC}
  COMMAND ${CMAKE_COMMAND} -DUI_DIR=${CMAKE_CURRENT_LIST_DIR} -DOUT=${GANTRY_UI_CC}
          -P ${CMAKE_CURRENT_LIST_DIR}/embed.cmake
  DEPENDS ${GANTRY_UI_ASSETS} ${CMAKE_CURRENT_LIST_DIR}/embed.cmake
  COMMENT "Embedding the dashboard assets (cloudcore/api/ui/assets)")
target_sources(cloudcore_api PRIVATE ${GANTRY_UI_CC})
