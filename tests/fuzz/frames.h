// The input format of the frame fuzzers: a sequence of records
//   <op: 1 byte> <length: 2 bytes, little endian> <length bytes>
// so that one input is a whole conversation (seeds in corpus/ are written by make_seeds.py). A
// record cut short by the end of the input takes what is left.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace gantry::fuzz {

struct Record {
  uint8_t op = 0;
  std::string_view bytes;
};

class Records {
 public:
  Records(const uint8_t* data, size_t size) : data_(data), size_(size) {}

  // False at the end of the input.
  bool next(Record* out) {
    if (pos_ >= size_) return false;
    out->op = data_[pos_++];
    size_t length = 0;
    if (pos_ < size_) length = data_[pos_++];
    if (pos_ < size_) length |= static_cast<size_t>(data_[pos_++]) << 8;
    if (length > size_ - pos_) length = size_ - pos_;
    out->bytes = std::string_view(reinterpret_cast<const char*>(data_) + pos_, length);
    pos_ += length;
    return true;
  }

 private:
  const uint8_t* data_;
  size_t size_;
  size_t pos_ = 0;
};

}  // namespace gantry::fuzz
