# The Debian package (included from the root CMakeLists.txt):
#
#   cmake -S . -B build-deb -DCMAKE_INSTALL_PREFIX=/usr -DNX_BENCH=OFF
#   cmake --build build-deb && (cd build-deb && cpack -G DEB)
#
# gives nextactd_<version>_<arch>.deb: the binary (stripped), the systemd
# unit, /etc/nextactd/nextactd.conf and schemas as conffiles (kept when
# edited, on upgrade), the manual pages, README, copyright and changelog.
# Dependencies come from dpkg-shlibdeps on the binary. tests/package checks
# the contents and runs lintian on it.
set(CPACK_PACKAGE_NAME "nextactd")
set(CPACK_PACKAGE_VENDOR "The nextact developers")
set(CPACK_PACKAGE_VERSION "${PROJECT_VERSION}")
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "real-time next-action prediction on Kafka clickstreams")
set(CPACK_PACKAGE_DESCRIPTION
    "nextactd consumes click, cart and purchase events (Avro) from Kafka, keeps
rolling per-user feature windows, trains a multilayer perceptron online and
publishes, for every event, the probability of each next action of that
user within a horizon to an output topic. It runs as a systemd service
beside a Kafka cluster; input offsets are committed only once the state
they changed is durable.")
set(CPACK_DEBIAN_PACKAGE_MAINTAINER "The nextact developers <nextact@example.org>")
set(CPACK_DEBIAN_PACKAGE_SECTION "net")
set(CPACK_DEBIAN_PACKAGE_PRIORITY "optional")
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_STRIP_FILES ON)
set(CPACK_DEBIAN_PACKAGE_CONTROL_STRICT_PERMISSION ON)
# conffiles: every file the package puts under /etc
set(NX_CONFFILES "/etc/nextactd/nextactd.conf\n")
file(GLOB NX_SCHEMAS RELATIVE ${PROJECT_SOURCE_DIR}/conf/schemas
     ${PROJECT_SOURCE_DIR}/conf/schemas/*.avsc)
foreach(s IN LISTS NX_SCHEMAS)
  string(APPEND NX_CONFFILES "/etc/nextactd/schemas/${s}\n")
endforeach()
file(WRITE ${PROJECT_BINARY_DIR}/debian/conffiles "${NX_CONFFILES}")
set(CPACK_DEBIAN_PACKAGE_CONTROL_EXTRA ${PROJECT_BINARY_DIR}/debian/conffiles)
set(CPACK_GENERATOR "DEB")
include(CPack)
