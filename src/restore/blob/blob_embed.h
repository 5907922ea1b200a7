// The restorer blob's flat binary (built from blob.cc + blob_entry.S, see
// CMakeLists.txt), embedded into stasis.  Offset 0 is the entry point:
// jump there with %rsp = the leader's blob stack and %rdi = BlobArgs*.
#pragma once

extern "C" {
extern const unsigned char stasis_blob_start[];
extern const unsigned char stasis_blob_end[];
}
