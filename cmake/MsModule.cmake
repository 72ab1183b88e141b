# ms_add_module(<name> SOURCES ... [PUBLIC_DEPS ...] [PRIVATE_DEPS ...])
#
# Declares one library module: an OBJECT library `ms_<name>` compiled from lib/<name>/src, and an
# INTERFACE target `ms_<name>_iface` that carries its public headers (lib/<name>/include) and public
# dependencies. The objects end up in one shared library (libms.so or libms_torch.so); the
# INTERFACE target is what other modules and apps link to see the headers.
function(ms_add_module name)
  cmake_parse_arguments(ARG "" "" "SOURCES;PUBLIC_DEPS;PRIVATE_DEPS" ${ARGN})
  add_library(ms_${name}_iface INTERFACE)
  if(EXISTS ${CMAKE_CURRENT_SOURCE_DIR}/include)
    target_include_directories(ms_${name}_iface INTERFACE ${CMAKE_CURRENT_SOURCE_DIR}/include)
  endif()
  if(ARG_PUBLIC_DEPS)
    target_link_libraries(ms_${name}_iface INTERFACE ${ARG_PUBLIC_DEPS})
  endif()
  add_library(ms_${name} OBJECT ${ARG_SOURCES})
  target_include_directories(ms_${name} PRIVATE ${CMAKE_CURRENT_SOURCE_DIR}/src)
  target_link_libraries(ms_${name} PUBLIC ms_${name}_iface)
  if(ARG_PRIVATE_DEPS)
    target_link_libraries(ms_${name} PRIVATE ${ARG_PRIVATE_DEPS})
  endif()
  target_compile_options(ms_${name} PRIVATE -Wall -Wextra)
endfunction()

# ms_missing_dependency(<option> <what> <debian packages> [<more hint>...])
#
# Fails configuration for an optional part whose option is ON but whose library was not found. A
# part never turns itself off: a build silently lacking zip, JPEG or the hub server would pass its
# own tests and fail its users.
function(ms_missing_dependency option what packages)
  set(more "")
  if(ARGN)
    string(JOIN " " more ${ARGN})
    set(more " ${more}")
  endif()
  message(FATAL_ERROR
    "${option} is ON but ${what} was not found. Install it (Debian/Ubuntu: apt-get install "
    "${packages}; scripts/setup.sh installs everything ms uses)${more}, or configure with "
    "-D${option}=OFF to build without it.")
endfunction()
