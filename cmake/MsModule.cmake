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

# ms_precompile_torch_headers(<target> [SKIP <source>...])
#
# With MS_PRECOMPILED_HEADERS, <target>'s sources start from cmake/torch_precompiled.h compiled once
# (LibTorch's headers, the bulk of a torch source's compile time), except the SKIP ones: sources
# that include little of LibTorch compile faster without it (loading the 400 MB header costs about
# 4 s). Measured one source at a time (-j1, 2-core VM): 11 s less for most model and hook sources,
# 26-31 s to make the header, so only targets with many heavy sources gain: the models (42 s
# less in all) and the trainer (55 s); the tensor, pipeline and export modules lost time.
# Those figures are of a build with MS_UNITY_BUILD=OFF, the only one SKIP applies to: a unity build
# compiles the SKIP sources in their batch, which starts from the header.
# One header per target, not one shared (REUSE_FROM): GCC passes over a header made with other
# command-line macros ("not used because ... not defined"), and the targets' differ.
function(ms_precompile_torch_headers target)
  cmake_parse_arguments(ARG "" "" "SKIP" ${ARGN})
  if(NOT MS_PRECOMPILED_HEADERS)
    return()
  endif()
  target_precompile_headers(${target} PRIVATE ${PROJECT_SOURCE_DIR}/cmake/torch_precompiled.h)
  if(ARG_SKIP)
    set_source_files_properties(${ARG_SKIP} PROPERTIES SKIP_PRECOMPILE_HEADERS ON)
  endif()
endfunction()
