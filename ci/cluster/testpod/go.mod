module ward.dev/testpod

go 1.26.0
