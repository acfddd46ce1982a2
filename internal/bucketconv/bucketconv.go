// Package bucketconv converts between gocloud.dev/blob (the portable layer)
// and gocloud.dev/blob/driver: their option and result types, and, with
// Bucket, a *blob.Bucket into a driver.Bucket.
//
// Drivers in this module are written on top of other *blob.Bucket values,
// through those buckets' public API: each call arrives in driver types and
// leaves in portable types, and these functions are the one place that
// mapping lives.
package bucketconv

import (
	"gocloud.dev/blob"
	"gocloud.dev/blob/driver"
)

// WriterOptions returns the portable writer options equivalent to the driver
// options o for an object of the given content type. The portable layer in
// front of the caller has already sniffed the content type, so detection is
// disabled when contentType is empty.
//
// ContentMD5 is not carried over: the portable layer in front of the driver
// has already verified the caller's checksum, and verifying it again in the
// wrapped bucket's portable layer would hash every byte twice. Callers that
// want the wrapped bucket to verify it set it on the result.
func WriterOptions(contentType string, o *driver.WriterOptions) *blob.WriterOptions {
	return &blob.WriterOptions{
		BufferSize:                  o.BufferSize,
		MaxConcurrency:              o.MaxConcurrency,
		CacheControl:                o.CacheControl,
		ContentDisposition:          o.ContentDisposition,
		ContentEncoding:             o.ContentEncoding,
		ContentLanguage:             o.ContentLanguage,
		ContentType:                 contentType,
		DisableContentTypeDetection: contentType == "",
		Metadata:                    o.Metadata,
		BeforeWrite:                 o.BeforeWrite,
		IfNotExist:                  o.IfNotExist,
	}
}

// ReaderOptions returns the portable reader options equivalent to o.
func ReaderOptions(o *driver.ReaderOptions) *blob.ReaderOptions {
	if o == nil {
		return nil
	}
	return &blob.ReaderOptions{BeforeRead: o.BeforeRead}
}

// CopyOptions returns the portable copy options equivalent to o.
func CopyOptions(o *driver.CopyOptions) *blob.CopyOptions {
	if o == nil {
		return nil
	}
	return &blob.CopyOptions{BeforeCopy: o.BeforeCopy}
}

// DeleteOptions returns the portable delete options equivalent to o.
func DeleteOptions(o *driver.DeleteOptions) *blob.DeleteOptions {
	if o == nil {
		return nil
	}
	return &blob.DeleteOptions{BeforeDelete: o.BeforeDelete}
}

// ListOptions returns the portable list options equivalent to o, without the
// paging fields, which blob.Bucket.ListPage takes as arguments.
func ListOptions(o *driver.ListOptions) *blob.ListOptions {
	return &blob.ListOptions{
		Prefix:     o.Prefix,
		Delimiter:  o.Delimiter,
		BeforeList: o.BeforeList,
	}
}

// SignedURLOptions returns the portable signed URL options equivalent to o.
func SignedURLOptions(o *driver.SignedURLOptions) *blob.SignedURLOptions {
	return &blob.SignedURLOptions{
		Expiry:                   o.Expiry,
		Method:                   o.Method,
		ContentType:              o.ContentType,
		EnforceAbsentContentType: o.EnforceAbsentContentType,
		BeforeSign:               o.BeforeSign,
	}
}

// Attributes returns the driver attributes equivalent to a. The metadata map
// is shared, not copied.
func Attributes(a *blob.Attributes) *driver.Attributes {
	return &driver.Attributes{
		CacheControl:       a.CacheControl,
		ContentDisposition: a.ContentDisposition,
		ContentEncoding:    a.ContentEncoding,
		ContentLanguage:    a.ContentLanguage,
		ContentType:        a.ContentType,
		Metadata:           a.Metadata,
		CreateTime:         a.CreateTime,
		ModTime:            a.ModTime,
		Size:               a.Size,
		MD5:                a.MD5,
		ETag:               a.ETag,
		AsFunc:             a.As,
	}
}

// ListObject returns the driver list entry equivalent to o.
func ListObject(o *blob.ListObject) *driver.ListObject {
	return &driver.ListObject{
		Key:     o.Key,
		ModTime: o.ModTime,
		Size:    o.Size,
		MD5:     o.MD5,
		IsDir:   o.IsDir,
		AsFunc:  o.As,
	}
}

// FirstPage maps a driver page token (nil for the first page) to the token
// blob.Bucket.ListPage expects.
func FirstPage(token []byte) []byte {
	if len(token) == 0 {
		return blob.FirstPageToken
	}
	return token
}
