/* mandel: the Mandelbrot set, rows dealt round-robin to the ranks and
 * gathered on rank 0, which writes a binary PGM image.
 * Usage: mandel [width] [height] [max_iter] [output]
 *        (defaults 640 480 256 mandel.pgm, relative to the working directory) */
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static unsigned char shade(double cr, double ci, int max_iter)
{
    double zr = 0.0, zi = 0.0;
    int i;
    for (i = 0; i < max_iter && zr * zr + zi * zi <= 4.0; i++) {
        double t = zr * zr - zi * zi + cr;
        zi = 2.0 * zr * zi + ci;
        zr = t;
    }
    return i >= max_iter ? 0 : (unsigned char)(255 - (255 * i) / max_iter);
}

int main(int argc, char **argv)
{
    int rank, size;
    int width = argc > 1 ? atoi(argv[1]) : 640;
    int height = argc > 2 ? atoi(argv[2]) : 480;
    int max_iter = argc > 3 ? atoi(argv[3]) : 256;
    const char *out = argc > 4 ? argv[4] : "mandel.pgm";

    MPI_Init(&argc, &argv);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    if (width <= 0 || height <= 0 || max_iter <= 0 || width > 20000 || height > 20000) {
        if (rank == 0)
            fprintf(stderr, "mandel: width, height and max_iter must be positive (width/height <= 20000)\n");
        MPI_Finalize();
        return 2;
    }
    double t0 = MPI_Wtime();
    unsigned char *image = NULL, *mine = calloc((size_t)width * height, 1);
    for (int y = rank; y < height; y += size)
        for (int x = 0; x < width; x++)
            mine[(size_t)y * width + x] =
                shade(-2.2 + 3.2 * x / width, -1.2 + 2.4 * y / height, max_iter);
    if (rank == 0)
        image = calloc((size_t)width * height, 1);
    /* rows a rank did not compute are zero, so a max-reduce assembles the image */
    MPI_Reduce(mine, image, width * height, MPI_UNSIGNED_CHAR, MPI_MAX, 0, MPI_COMM_WORLD);
    if (rank == 0) {
        FILE *fh = fopen(out, "wb");
        if (!fh) {
            perror(out);
            MPI_Abort(MPI_COMM_WORLD, 1);
        }
        fprintf(fh, "P5\n%d %d\n255\n", width, height);
        fwrite(image, 1, (size_t)width * height, fh);
        fclose(fh);
        printf("mandel: wrote %dx%d image to %s in %f s on %d ranks\n", width, height, out,
               MPI_Wtime() - t0, size);
        free(image);
    }
    free(mine);
    MPI_Finalize();
    return 0;
}
