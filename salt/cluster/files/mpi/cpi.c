/* cpi: pi by midpoint integration of 4/(1+x^2) over [0,1], split across
 * ranks; each rank says where it runs, rank 0 prints the value, its error
 * and the wall time.
 * Usage: cpi [intervals]   (default 10000000) */
#include <math.h>
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>

int main(int argc, char **argv)
{
    const double PI25DT = 3.141592653589793238462643;
    int rank, size, namelen;
    char name[MPI_MAX_PROCESSOR_NAME];
    long n = 10000000;
    double local = 0.0, pi = 0.0, t0;

    MPI_Init(&argc, &argv);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    MPI_Get_processor_name(name, &namelen);
    printf("Process %d of %d is on %s\n", rank, size, name);
    fflush(stdout);
    if (argc > 1)
        n = atol(argv[1]);
    if (n <= 0) {
        if (rank == 0)
            fprintf(stderr, "cpi: intervals must be a positive integer, got '%s'\n", argv[1]);
        MPI_Finalize();
        return 2;
    }
    t0 = MPI_Wtime();
    MPI_Bcast(&n, 1, MPI_LONG, 0, MPI_COMM_WORLD);
    double h = 1.0 / (double)n;
    for (long i = rank; i < n; i += size) {
        double x = h * ((double)i + 0.5);
        local += 4.0 / (1.0 + x * x);
    }
    local *= h;
    MPI_Reduce(&local, &pi, 1, MPI_DOUBLE, MPI_SUM, 0, MPI_COMM_WORLD);
    if (rank == 0) {
        printf("pi is approximately %.16f, Error is %.16f\n", pi, fabs(pi - PI25DT));
        printf("wall clock time = %f s on %d ranks\n", MPI_Wtime() - t0, size);
    }
    MPI_Finalize();
    return 0;
}
