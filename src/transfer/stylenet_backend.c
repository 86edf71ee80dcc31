/* stylenet_backend.c - the registry of the style network's devices (stylenet_backend.h):
 * which table applies and which trains on each device. A build without CUDA links
 * cuda/no_cuda.c's stand-ins for the CUDA tables, so nothing here depends on the build. */
#include "transfer/stylenet_backend.h"

#define COUNT(a) (int)(sizeof(a) / sizeof((a)[0]))

static const stylenet_backend *const apply_tables[] = {
    [NST_DEVICE_CPU] = &stylenet_cpu_backend,
    [NST_DEVICE_CUDA] = &stylenet_cuda_backend,
};

static const stylenet_trainer_backend *const train_tables[] = {
    [NST_DEVICE_CPU] = &stylenet_trainer_cpu_backend,
    [NST_DEVICE_CUDA] = &stylenet_trainer_cuda_backend,
};

const stylenet_backend *stylenet_backend_get(nst_device device) {
    int d = (int)device;
    return d >= 0 && d < COUNT(apply_tables) && apply_tables[d] ? apply_tables[d] : &stylenet_cpu_backend;
}

const stylenet_trainer_backend *stylenet_trainer_backend_get(nst_device device) {
    int d = (int)device;
    return d >= 0 && d < COUNT(train_tables) && train_tables[d] ? train_tables[d] : &stylenet_trainer_cpu_backend;
}
