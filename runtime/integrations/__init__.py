"""nasc inside other tools: sweeps through submitit, searches as Ray Tune trials."""
