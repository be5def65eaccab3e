package cli

import (
	"strings"

	"github.com/ironcast/ironcast/api/client"
	"github.com/ironcast/ironcast/clientcfg"
)

// envNoTokenCache, when true, turns the token cache off (as
// --no-token-cache does).
const envNoTokenCache = "IRONCAST_NO_TOKEN_CACHE"

// fileTokenCache is the client.TokenCache of one endpoint and user, kept
// in a 0600 file of clientcfg's token cache. It is best effort: a file
// that cannot be read or written costs a login, never a failed command.
type fileTokenCache struct {
	endpoint, username string
}

var _ client.TokenCache = fileTokenCache{}

func newFileTokenCache(endpoint, username string) fileTokenCache {
	return fileTokenCache{endpoint: strings.TrimSuffix(endpoint, "/"), username: username}
}

func (c fileTokenCache) Load() (client.Token, bool) {
	t, err := clientcfg.ReadToken(c.endpoint, c.username)
	if err != nil {
		return client.Token{}, false
	}
	return client.Token{Token: t.Token, ExpiresAt: t.ExpiresAt}, true
}

func (c fileTokenCache) Store(t client.Token) {
	_ = clientcfg.WriteToken(clientcfg.CachedToken{Endpoint: c.endpoint, Username: c.username, Token: t.Token, ExpiresAt: t.ExpiresAt})
}

func (c fileTokenCache) Drop() { _ = clientcfg.RemoveToken(c.endpoint, c.username) }
