/* device.c - choosing between the CPU and CUDA (both builds). */
#include <string.h>

#include "cuda/cuda_common.h"
#include "util/util.h"

nst_status nst_device_parse(const char *name, nst_device *dev, nst_error *err) {
    if (strcmp(name, "auto") == 0) *dev = NST_DEVICE_AUTO;
    else if (strcmp(name, "cpu") == 0) *dev = NST_DEVICE_CPU;
    else if (strcmp(name, "cuda") == 0 || strcmp(name, "gpu") == 0) *dev = NST_DEVICE_CUDA;
    else return nst_fail(err, NST_ERR_ARG, "unknown device '%.100s' (expected auto, cpu or cuda)", name);
    return NST_OK;
}

const char *nst_device_name(nst_device dev) {
    switch (dev) {
    case NST_DEVICE_CPU: return "cpu";
    case NST_DEVICE_CUDA: return "cuda";
    default: return "auto";
    }
}

nst_status nst_device_resolve(nst_device requested, nst_device *resolved, nst_error *err) {
    if (requested == NST_DEVICE_CPU) {
        *resolved = NST_DEVICE_CPU;
        return NST_OK;
    }
    nst_error why;
    nst_status st = nst_cuda_probe(&why);
    if (requested == NST_DEVICE_AUTO) {
        *resolved = st == NST_OK ? NST_DEVICE_CUDA : NST_DEVICE_CPU;
        return NST_OK;
    }
    if (st != NST_OK) return nst_fail(err, st, "--device cuda: %s", why.msg);
    *resolved = NST_DEVICE_CUDA;
    return NST_OK;
}
