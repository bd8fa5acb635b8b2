module tenfold.dev/pause

go 1.22
