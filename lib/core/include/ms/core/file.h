// Whole-file reads and atomic writes (temp file in the same folder, fsync, rename).
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <string>
#include <string_view>

#include "ms/core/error.h"
#include "ms/core/export.h"

namespace ms {

/// Reads a whole file; throws ms::Error (kNotFound / kIo) naming the path.
MS_API std::string read_file(const std::filesystem::path& path);

/// Throws ms::Error naming `path` when something is there that cannot be reached: a symbolic
/// link that leads nowhere (kNotFound, naming its target), or a path that cannot be looked at (a
/// link loop, a name too long, a folder above it that may not be searched: kIo with why).
/// Returns when the path is there, or plainly absent. For the checks that would otherwise call
/// such a path "missing" (std::filesystem::exists() is false for all of them), so that the
/// error says what is wrong, and an unreadable optional file is not taken for an absent one.
MS_API void check_reachable(const std::filesystem::path& path);

/// Whether `path` is a regular file (through links): false when it is absent, an ms::Error
/// naming it when it cannot be reached (check_reachable) or is something else (a folder, a
/// FIFO: `other_code`). For a folder's optional files (a model's configuration.json), which
/// must not be skipped as absent when they are there but unreadable.
MS_API bool optional_regular_file(const std::filesystem::path& path,
                                  ErrorCode other_code = ErrorCode::kConfig);

/// Reads a whole regular file (through symbolic links) of at most `max_bytes`, for a path that
/// names one item of data (an image of a JSON line, a text file to embed): a device, FIFO or
/// socket there is ms::Error(kUsage) naming it and what it is, before any read (/dev/zero would
/// never end, a FIFO would wait for a writer), and a larger file is kUsage too. Otherwise as
/// read_file.
MS_API std::string read_regular_file(const std::filesystem::path& path,
                                     std::uintmax_t max_bytes = UINTMAX_MAX);

/// Creates folder `dir` and its missing parents; throws ms::Error (kIo) naming it and why (a file
/// in the way, a read-only file system, no permission). `what` says what the folder is for
/// ("--work-dir", "CheckpointHook.save_dir").
MS_API void make_directories(const std::filesystem::path& dir, const std::string& what);

/// Why create_directories(dir) failed with `ec`, for a message: the system's reason, or, where
/// a link on the way leads nowhere (MODELSCOPE_CACHE a dangling link: "File exists"), that.
MS_API std::string folder_creation_failure(const std::filesystem::path& dir,
                                           const std::error_code& ec);

/// Whether `path` (which need not exist) lies inside the folder `folder`, both with links
/// resolved as far as they exist: an output named through a link to the folder is inside it, and
/// so is a name in the folder that is a link leading out of it.
MS_API bool is_inside_folder(const std::filesystem::path& path,
                             const std::filesystem::path& folder);

/// Folders written whole and then renamed into place (`ms export`'s output) are first written as
/// ".NAME" + this + six random characters beside their final name NAME.
inline constexpr std::string_view kExportTempInfix = ".ms-export-";

/// Whether `name` (one path component) is one of ms's own temporary names: a file that
/// write_file_atomic writes, or left when killed (".NAME.tmp.XXXXXX"), or a folder written as
/// kExportTempInfix says. Uploads skip them (a file unless --include names it).
MS_API bool is_temp_write_name(std::string_view name);

/// Removes the temporary files that write_file_atomic leaves in folder `dir` when its process is
/// killed mid-write (".NAME.tmp.XXXXXX"). Only for a folder no other process writes to now (held
/// by a lock); a missing folder is fine. Returns how many it removed.
MS_API std::size_t remove_unfinished_writes(const std::filesystem::path& dir);

/// Removes the temporary files that write_file_atomic left next to `path` when its process died
/// mid-write, and only those: a file still being written is locked (flock) by its writer, so one
/// whose lock can be taken is a dead writer's (the lock, not a PID in the name, says so: a PID
/// can be reused, and means nothing to another host or PID namespace sharing the folder). Safe
/// while other processes write `path`. write_file_atomic leaves it to the owner of the folder
/// (a download its index files, ms login the credentials, ms infer its output, the trainer its
/// work folder): a folder listing on every write would cost the hub server one per blob. Returns
/// how many it removed.
MS_API std::size_t remove_abandoned_writes(const std::filesystem::path& path);

/// The same for temporary folders next to `path` named ".NAME" + `infix` + six characters
/// (mkdtemp's; `ms export` writes ".NAME.ms-export-XXXXXX"), which their writers hold with
/// lock_folder() until renamed into place.
MS_API std::size_t remove_abandoned_folders(const std::filesystem::path& path,
                                            std::string_view infix);

/// Locks folder `dir` (flock, exclusive) for as long as the returned descriptor is open; -1 with
/// errno set when it cannot: ENOENT when the folder is gone (another process's
/// remove_abandoned_folders took it before the lock was held: make another).
MS_API int lock_folder(const std::filesystem::path& dir);

/// A folder being written whole, to be renamed into place: its path and the descriptor holding
/// its lock (lock_folder) until then. Close `lock` once it has its final name or is removed.
struct LockedTempFolder {
  std::filesystem::path path;
  int lock = -1;
};

/// Makes and locks ".NAME" + `infix` + six random characters beside `path` (NAME its file name;
/// remove_abandoned_folders(path, infix) sweeps a dead writer's), with the mode a new folder
/// gets (the umask), and the setgid bit it inherits kept, so that a folder shared by a group
/// stays the group's. kIo naming the folder, with `hint`, when it cannot be made.
MS_API LockedTempFolder make_locked_temp_folder(const std::filesystem::path& path,
                                                std::string_view infix, const std::string& hint);

/// The process's file mode creation mask (022 where /proc does not say).
MS_API mode_t current_umask();

/// Writes `data` to `path` atomically: readers see the old file or the new one, never a part.
/// Creates missing parent folders. A new file gets `mode` (e.g. 0600 for credentials) less the
/// umask, as open(2) and Python make files (a cache shared by a group under umask 002 stays
/// writable by it); a replaced file keeps its permissions, less any `mode` lacks.
MS_API void write_file_atomic(const std::filesystem::path& path, std::string_view data,
                              unsigned mode = 0666);

/// Appends bytes to the file that write_file_atomic's streaming form writes.
using FileSink = std::function<void(const void* data, std::size_t n)>;

/// write_file_atomic of what `produce` hands its sink, without holding the whole file in memory
/// (checkpoints). An exception from `produce` (or the sink's ms::Error(kIo) naming `path`)
/// removes the temp file, leaves `path` as it was, and propagates.
MS_API void write_file_atomic(const std::filesystem::path& path,
                              const std::function<void(const FileSink& sink)>& produce,
                              unsigned mode = 0666);

/// Writes all `n` bytes at `offset` of `fd` (pwrite, retried on EINTR and short writes); throws
/// ms::Error (kIo) naming `path`. Big writes go out in pieces of kWritePiece bytes: Linux 6.16+
/// sizes a file's page-cache folios by the write, and a 1 MiB write takes 1 MiB folios from
/// high-order free memory, which on a VM that hands free memory back to its host (balloon
/// free-page reporting, as on the project's machine) must be faulted in again, while folios of
/// 32 KiB and less come from per-CPU lists of recently freed pages. Writing 2 GiB there took
/// 0.42 s in 32 KiB pieces against 1.0-3.8 s in 64 KiB to 1 MiB pieces; elsewhere the extra
/// system calls cost about a microsecond per piece.
MS_API void write_all_at(int fd, const char* data, std::size_t n, std::uint64_t offset,
                         const std::filesystem::path& path);
inline constexpr std::size_t kWritePiece = 32u << 10;

/// Appends `data` to `path` (created as open(2) would, 0666 less the umask) all or nothing: when a
/// write fails part-way (a full disk) the file is cut back to its old end, so a log of lines never
/// ends in half a line. Throws ms::Error (kIo) naming `path`.
MS_API void append_whole(const std::filesystem::path& path, std::string_view data);

}  // namespace ms
