"""Running a replay: the engines that run the translate stage (in process, worker processes,
Dask), the replay loop that feeds a sink and records every outcome, the session around it, and
what checks or reads a database (connect, doctor, readback). What a translation is lives in
`mapping/`."""
