// The target holds only a declaration (include/CFuzzerDriver.h); SwiftPM needs one source file.
#include "CFuzzerDriver.h"
