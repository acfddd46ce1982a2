module github.com/failoverblob/failoverblob

go 1.26.8

require (
	github.com/sony/gobreaker/v2 v2.4.0 // indirect
	github.com/stretchr/testify v1.12.1 // indirect
	gocloud.dev v0.47.0 // indirect
)
