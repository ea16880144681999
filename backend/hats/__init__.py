"""A survey as a HATS collection (HEALPix-partitioned parquet) with its cutouts chunked to match.

``python -m backend export --survey S --format hats --out DIR`` writes (:mod:`.export`)::

    DIR/collection.properties            the collection: main catalog S, margin S_5arcs
    DIR/S/hats.properties                HATS table properties (name, ra/dec columns, rows, ...)
    DIR/S/partition_info.csv             the HEALPix pixels (Norder, Npix) of the partitions
    DIR/S/point_map.fits, skymap.fits    object counts per HEALPix pixel (order 7 or finer)
    DIR/S/dataset/Norder=K/Dir=D/Npix=N.parquet
                                         one partition: catalog rows, the survey's per-object
                                         products (columns named ``<kind>_<version>_<name>``),
                                         ``survey_index``, ``cutout_file``, ``cutout_row``,
                                         sorted by ``_healpix_29``
    DIR/S/dataset/_metadata, _common_metadata
    DIR/S/cutouts/order=K/dir=D/npix=N.zarr
                                         that partition's cutouts, (n, C, H, W) float32 in
                                         survey order; row ``cutout_row`` is the cutout of
                                         the catalog row (not named Norder=/Dir=/Npix=: hats'
                                         validation would take them for partitions)
    DIR/S/latentsky.json                 the survey's description (bands, display, pixel scale),
                                         its catalog columns and the exported products
    DIR/S_5arcs/...                      the margin cache (:mod:`.margin`): for each partition,
                                         the rows just outside it (same columns; cutout_file
                                         relative to DIR/S); absent when there is no margin

The catalog files are written with hats' functions (:mod:`.partition`, :mod:`.export`), the
cutouts by a two-pass shuffle on the ``--scheduler``'s executor (:mod:`.cutouts`), all in a
hidden folder renamed into place at the end. ``python -m backend ingest hats DIR --survey S``
(:mod:`backend.ingest.hats`) reads it back.
"""
