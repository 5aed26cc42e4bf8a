#ifndef OBSCURA_CFUZZERDRIVER_H
#define OBSCURA_CFUZZERDRIVER_H

#include <stddef.h>
#include <stdint.h>

/// libFuzzer's driver (compiler-rt, linked by -sanitize=fuzzer): runs the fuzzing loop with the
/// command line's options, calling `callback` with each input. Declared here, not defined: only
/// the fuzzing build of obscura-fuzz calls it, and that build links libFuzzer.
int LLVMFuzzerRunDriver(int *argc, char ***argv, int (*callback)(const uint8_t *data, size_t size));

#endif
