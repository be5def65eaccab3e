package api

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strings"

	"github.com/go-chi/chi/v5"

	"github.com/ironcast/ironcast/bootfiles"
	"github.com/ironcast/ironcast/model"
)

// BootFiles is what the ISO and file routes need from the boot root.
// *bootfiles.Store implements it.
type BootFiles interface {
	PutISO(ctx context.Context, name string, r io.Reader, want bootfiles.Expect) (*bootfiles.Result, error)
	PutFile(ctx context.Context, path string, r io.Reader) (*bootfiles.Result, error)
	List(ctx context.Context, prefix string, sums bool) ([]bootfiles.Entry, error)
	Delete(ctx context.Context, path string) error
}

var _ BootFiles = (*bootfiles.Store)(nil)

// isUpload reports whether r is an ISO or file upload, whose body streams
// to disk and is bounded by the disk rather than MaxBodyBytes.
func isUpload(r *http.Request) bool {
	p := r.URL.Path
	return (r.Method == http.MethodPost && strings.HasPrefix(p, "/api/v1/isos/")) ||
		(r.Method == http.MethodPut && strings.HasPrefix(p, "/api/v1/files/"))
}

// fileRoutes adds /api/v1/isos and /api/v1/files when Config.Files is set.
func (s *Server) fileRoutes(r chi.Router) {
	if s.files == nil {
		return
	}
	r.Get("/isos", s.h(s.listISOs))
	r.Post("/isos/{name}", s.h(s.uploadISO))
	r.Delete("/isos/{name}", s.h(s.deleteISO))
	r.Get("/files", s.h(s.listFiles))
	r.Put("/files/*", s.h(s.uploadFile))
	r.Delete("/files/*", s.h(s.deleteFile))
}

// bodyReader remembers whether reading the request body failed, so that an
// interrupted upload is answered as the client's problem.
type bodyReader struct {
	r   io.Reader
	err error
}

func (b *bodyReader) Read(p []byte) (int, error) {
	n, err := b.r.Read(p)
	if err != nil && err != io.EOF {
		b.err = err
	}
	return n, err
}

// uploadError maps what an upload returns: a broken body is a 400, a full
// boot root a 507; anything else goes to writeError as it is.
func uploadError(body *bodyReader, err error) error {
	if body.err != nil && !errors.Is(err, bootfiles.ErrNoSpace) {
		return badRequest("", "upload interrupted: %v", body.err)
	}
	if errors.Is(err, bootfiles.ErrNoSpace) {
		return badRequestStatus(http.StatusInsufficientStorage, "%v", err)
	}
	return err
}

// pathParam returns the unescaped URL parameter key ("*" for a wildcard).
func pathParam(r *http.Request, key string) (string, error) {
	v, err := url.PathUnescape(chi.URLParam(r, key))
	if err != nil {
		return "", badRequest("", "bad escape in path: %v", err)
	}
	return v, nil
}

// uploadISO stores an ISO and extracts it for the bootenvs that use it.
//
//	@Summary		Upload an ISO
//	@Description	Streams the body (the image, not JSON) to isos/NAME in the boot root, checks its sha256 against every bootenv architecture whose IsoFile is NAME (or against ?sha256=), and extracts its ISO 9660 contents (Rock Ridge or Joliet names) into BOOTENV/ARCH/ for each of them. A wrong checksum is refused with 422 naming both sums, and nothing is kept; an interrupted upload leaves the old ISO and trees as they were. The body is not bounded by the API's 16 MiB limit.
//	@Tags			isos
//	@Accept			octet-stream
//	@Produce		json
//	@Param			name	path		string	true	"file name, e.g. ubuntu-24.04.1-live-server-amd64.iso"
//	@Param			sha256	query		string	false	"expected sha256, overriding the bootenvs'"
//	@Param			image	body		string	true	"the ISO image"
//	@Success		201		{object}	bootfiles.Result
//	@Failure		400		{object}	ErrorResponse
//	@Failure		401		{object}	ErrorResponse
//	@Failure		403		{object}	ErrorResponse
//	@Failure		422		{object}	ErrorResponse
//	@Failure		507		{object}	ErrorResponse
//	@Security		Bearer
//	@Router			/isos/{name} [post]
func (s *Server) uploadISO(w http.ResponseWriter, r *http.Request) error {
	name, err := pathParam(r, "name")
	if err != nil {
		return err
	}
	if err := bootfiles.CleanName(name); err != nil {
		return err
	}
	objs, err := s.backend.List(r.Context(), model.KindBootEnvs)
	if err != nil {
		return err
	}
	envs := make([]*model.BootEnv, 0, len(objs))
	for _, o := range objs {
		if be, ok := o.(*model.BootEnv); ok {
			envs = append(envs, be)
		}
	}
	want, err := bootfiles.ExpectFor(name, envs)
	if sum := r.URL.Query().Get("sha256"); sum != "" {
		want.Sha256, err = sum, nil
	}
	if err != nil {
		return err
	}
	body := &bodyReader{r: r.Body}
	res, err := s.files.PutISO(r.Context(), name, body, want)
	if err != nil {
		return uploadError(body, err)
	}
	writeJSON(w, http.StatusCreated, res)
	return nil
}

// listISOs lists the uploaded ISOs.
//
//	@Summary		List ISOs
//	@Description	The files in isos/ of the boot root, with their sha256 when ?sha256=true (which reads every ISO).
//	@Tags			isos
//	@Produce		json
//	@Param			sha256	query		bool	false	"compute each file's sha256"
//	@Success		200		{array}		bootfiles.Entry
//	@Failure		401		{object}	ErrorResponse
//	@Security		Bearer
//	@Router			/isos [get]
func (s *Server) listISOs(w http.ResponseWriter, r *http.Request) error {
	list, err := s.files.List(r.Context(), "isos", r.URL.Query().Get("sha256") == "true")
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, list)
	return nil
}

// deleteISO removes an uploaded ISO (not the trees extracted from it).
//
//	@Summary		Delete an ISO
//	@Description	Removes isos/NAME. The trees extracted from it stay; remove them with DELETE /files/BOOTENV/ARCH.
//	@Tags			isos
//	@Param			name	path	string	true	"file name"
//	@Success		204
//	@Failure		401	{object}	ErrorResponse
//	@Failure		403	{object}	ErrorResponse
//	@Failure		404	{object}	ErrorResponse
//	@Failure		422	{object}	ErrorResponse
//	@Security		Bearer
//	@Router			/isos/{name} [delete]
func (s *Server) deleteISO(w http.ResponseWriter, r *http.Request) error {
	name, err := pathParam(r, "name")
	if err != nil {
		return err
	}
	if err := bootfiles.CleanName(name); err != nil {
		return err
	}
	if err := s.files.Delete(r.Context(), "isos/"+name); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// uploadFile stores any file in the boot root.
//
//	@Summary		Upload a boot file
//	@Description	Streams the body to PATH in the boot root (for example linuxkit/NAME-kernel or discovery/amd64/vmlinuz), replacing the file there whole or not at all. Path components are letters, digits and ._+~@=,- and do not start with a dot. The body is not bounded by the API's 16 MiB limit.
//	@Tags			files
//	@Accept			octet-stream
//	@Produce		json
//	@Param			path	path		string	true	"path below the boot root"
//	@Param			file	body		string	true	"the file's contents"
//	@Success		201		{object}	bootfiles.Result
//	@Failure		400		{object}	ErrorResponse
//	@Failure		401		{object}	ErrorResponse
//	@Failure		403		{object}	ErrorResponse
//	@Failure		409		{object}	ErrorResponse
//	@Failure		422		{object}	ErrorResponse
//	@Failure		507		{object}	ErrorResponse
//	@Security		Bearer
//	@Router			/files/{path} [put]
func (s *Server) uploadFile(w http.ResponseWriter, r *http.Request) error {
	p, err := pathParam(r, "*")
	if err != nil {
		return err
	}
	body := &bodyReader{r: r.Body}
	res, err := s.files.PutFile(r.Context(), p, body)
	if err != nil {
		return uploadError(body, err)
	}
	writeJSON(w, http.StatusCreated, res)
	return nil
}

// listFiles lists the files in the boot root.
//
//	@Summary		List boot files
//	@Description	The regular files at or below ?prefix= (all when empty), sorted by path, with their sha256 when ?sha256=true.
//	@Tags			files
//	@Produce		json
//	@Param			prefix	query		string	false	"directory or file below the boot root"
//	@Param			sha256	query		bool	false	"compute each file's sha256"
//	@Success		200		{array}		bootfiles.Entry
//	@Failure		401		{object}	ErrorResponse
//	@Failure		422		{object}	ErrorResponse
//	@Security		Bearer
//	@Router			/files [get]
func (s *Server) listFiles(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	list, err := s.files.List(r.Context(), q.Get("prefix"), q.Get("sha256") == "true")
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, list)
	return nil
}

// deleteFile removes a file or a directory tree from the boot root.
//
//	@Summary		Delete a boot file or tree
//	@Description	Removes the file, or the whole directory tree, at PATH. A tree disappears at once.
//	@Tags			files
//	@Param			path	path	string	true	"path below the boot root"
//	@Success		204
//	@Failure		401	{object}	ErrorResponse
//	@Failure		403	{object}	ErrorResponse
//	@Failure		404	{object}	ErrorResponse
//	@Failure		422	{object}	ErrorResponse
//	@Security		Bearer
//	@Router			/files/{path} [delete]
func (s *Server) deleteFile(w http.ResponseWriter, r *http.Request) error {
	p, err := pathParam(r, "*")
	if err != nil {
		return err
	}
	if err := s.files.Delete(r.Context(), p); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}
