// Whole-file reads and crash-safe whole-file writes (certificates, keys, generated configs).
#pragma once

#include <sys/types.h>

#include <filesystem>
#include <string>
#include <string_view>

#include "common/base/status.h"

namespace gantry::common {

// Replaces `path` with `contents` so that, even across a crash or power cut, the file holds
// either its old or its new contents, never a mix: writes a temporary file in the same
// directory, fsyncs it, renames it over `path`, then fsyncs the directory so that the rename
// itself is durable. The file gets exactly `mode` (the umask does not apply), and it never has
// looser permissions than 0600 while being written, so secrets are safe to write this way.
// A symlink at `path` is replaced, not followed. Errors name the path and the system's reason.
Status write_file_atomic(const std::filesystem::path& path, std::string_view contents,
                         mode_t mode = 0644);

// The whole file. NotFound / PermissionDenied / Internal, with "reading PATH: REASON".
Result<std::string> read_file(const std::filesystem::path& path);

}  // namespace gantry::common
