# Debian packages (CPack, `cpack -G DEB` in the build tree; tests/e2e/packaging builds and installs
# them): gantry-cloudcore (cloudcore) and gantry-edgecore (edgecore + gantryadm), with their
# systemd units, sample configurations, the monitoring files and maintainer scripts that are safe
# without systemd (deploy/debian). Dependencies come from dpkg-shlibdeps.
if(NOT TARGET cloudcore OR NOT TARGET edgecore OR NOT TARGET gantryadm)
  return()
endif()

set(GANTRY_PACKAGING_DIR ${PROJECT_BINARY_DIR}/packaging)
set(debian_src ${PROJECT_SOURCE_DIR}/deploy/debian)

install(TARGETS cloudcore RUNTIME DESTINATION bin COMPONENT cloudcore)
install(TARGETS edgecore gantryadm RUNTIME DESTINATION bin COMPONENT edgecore)

foreach(component cloudcore edgecore)
  set(pkg gantry-${component})
  set(doc share/doc/${pkg})
  set(out ${GANTRY_PACKAGING_DIR}/${component})
  file(MAKE_DIRECTORY ${out}/control)
  # The units in deploy/systemd name /usr/local/bin (a hand install); the package's is /usr/bin.
  file(READ ${PROJECT_SOURCE_DIR}/deploy/systemd/${component}.service unit)
  string(REPLACE "/usr/local/bin/" "/usr/bin/" unit "${unit}")
  file(WRITE ${out}/${component}.service "${unit}")
  # Maintainer scripts go into the control archive under their plain names.
  foreach(script postinst prerm postrm)
    configure_file(${debian_src}/${script}-${component} ${out}/control/${script} COPYONLY)
  endforeach()
  # changelog.Debian.gz, compressed the way Debian wants it (gzip -9n: no name, no time stamp).
  set(PKG ${pkg})
  set(VERSION ${PROJECT_VERSION})
  configure_file(${debian_src}/changelog.in ${out}/changelog @ONLY)
  execute_process(COMMAND gzip -9nc ${out}/changelog OUTPUT_FILE ${out}/changelog.Debian.gz
                  COMMAND_ERROR_IS_FATAL ANY)

  install(FILES ${out}/${component}.service DESTINATION /lib/systemd/system
          PERMISSIONS OWNER_READ OWNER_WRITE GROUP_READ WORLD_READ COMPONENT ${component})
  install(FILES ${debian_src}/copyright ${out}/changelog.Debian.gz DESTINATION ${doc}
          PERMISSIONS OWNER_READ OWNER_WRITE GROUP_READ WORLD_READ COMPONENT ${component})
  install(FILES ${debian_src}/README.Debian.${component} DESTINATION ${doc} RENAME README.Debian
          PERMISSIONS OWNER_READ OWNER_WRITE GROUP_READ WORLD_READ COMPONENT ${component})
  install(FILES ${PROJECT_SOURCE_DIR}/deploy/${component}.yaml DESTINATION ${doc}/examples
          PERMISSIONS OWNER_READ OWNER_WRITE GROUP_READ WORLD_READ COMPONENT ${component})
endforeach()
# Manual pages, gzipped as Debian wants them.
foreach(page cloudcore:cloudcore edgecore:edgecore gantryadm:edgecore)
  string(REPLACE ":" ";" page "${page}")
  list(GET page 0 name)
  list(GET page 1 component)
  execute_process(COMMAND gzip -9nc ${debian_src}/${name}.1
                  OUTPUT_FILE ${GANTRY_PACKAGING_DIR}/${name}.1.gz COMMAND_ERROR_IS_FATAL ANY)
  install(FILES ${GANTRY_PACKAGING_DIR}/${name}.1.gz DESTINATION share/man/man1
          PERMISSIONS OWNER_READ OWNER_WRITE GROUP_READ WORLD_READ COMPONENT ${component})
endforeach()
install(FILES ${PROJECT_SOURCE_DIR}/deploy/prometheus/gantry-rules.yaml
              ${PROJECT_SOURCE_DIR}/deploy/grafana/gantry-cloudcore.json
        DESTINATION share/doc/gantry-cloudcore/examples/monitoring
        PERMISSIONS OWNER_READ OWNER_WRITE GROUP_READ WORLD_READ COMPONENT cloudcore)

set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
set(CPACK_PACKAGE_NAME gantry)
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGE_VENDOR "Gantry")
set(CPACK_PACKAGE_CONTACT "Gantry developers <gantry@example.org>")
set(CPACK_PACKAGE_DIRECTORY ${GANTRY_PACKAGING_DIR}/out)
set(CPACK_STRIP_FILES ON)
set(CPACK_DEB_COMPONENT_INSTALL ON)
set(CPACK_COMPONENTS_ALL cloudcore edgecore)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_RELEASE 1)
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
set(CPACK_DEBIAN_PACKAGE_SECTION admin)
set(CPACK_DEBIAN_PACKAGE_PRIORITY optional)
set(CPACK_DEBIAN_PACKAGE_HOMEPAGE "https://gantry.invalid/")
set(CPACK_DEBIAN_PACKAGE_GENERATE_SHLIBS OFF)
set(CPACK_DEBIAN_PACKAGE_CONTROL_STRICT_PERMISSION ON)

set(CPACK_DEBIAN_CLOUDCORE_PACKAGE_NAME gantry-cloudcore)
set(CPACK_DEBIAN_CLOUDCORE_PACKAGE_SECTION net)
# gantryadm init (the cluster's PKI, tokens, cloudcore.yaml) is in gantry-edgecore.
set(CPACK_DEBIAN_CLOUDCORE_PACKAGE_DEPENDS "gantry-edgecore (= ${PROJECT_VERSION}-1)")
set(CPACK_COMPONENT_CLOUDCORE_DESCRIPTION
    "Gantry cloud side: the control plane of an edge fleet\n\
cloudcore keeps the desired and observed state of a fleet of edge nodes in its\n\
embedded store (or etcd), serves their tunnels, the join endpoint and a\n\
Kubernetes-compatible REST API for kubectl, with Prometheus metrics.")
set(CPACK_DEBIAN_CLOUDCORE_PACKAGE_CONTROL_EXTRA
    "${GANTRY_PACKAGING_DIR}/cloudcore/control/postinst;${GANTRY_PACKAGING_DIR}/cloudcore/control/prerm;${GANTRY_PACKAGING_DIR}/cloudcore/control/postrm")

set(CPACK_DEBIAN_EDGECORE_PACKAGE_NAME gantry-edgecore)
set(CPACK_DEBIAN_EDGECORE_PACKAGE_SECTION net)
set(CPACK_DEBIAN_EDGECORE_PACKAGE_RECOMMENDS "containerd")
set(CPACK_COMPONENT_EDGECORE_DESCRIPTION
    "Gantry edge side: the agent of an edge node, and gantryadm\n\
edgecore runs an edge node's pods through containerd and keeps running them\n\
while the link to the cloud is down. gantryadm creates a cluster (init),\n\
issues join tokens (gettoken) and joins nodes (join).")
set(CPACK_DEBIAN_EDGECORE_PACKAGE_CONTROL_EXTRA
    "${GANTRY_PACKAGING_DIR}/edgecore/control/postinst;${GANTRY_PACKAGING_DIR}/edgecore/control/prerm;${GANTRY_PACKAGING_DIR}/edgecore/control/postrm")

include(CPack)
