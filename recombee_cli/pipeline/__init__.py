"""The pipeline between Segment in and Recombee out: configuration, translation (trigger -> map ->
build), the engines that run it (in process, worker processes, Dask), and the replay loop that feeds
a sink and records every outcome."""
