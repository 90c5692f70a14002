package events

import "strings"

// currencyDecimals maps every currency hookline accepts to the number of
// decimals of its minor unit: ISO 4217's active codes, plus the crypto assets
// merchants settle in. Amounts are always integers in minor units, so this is
// what turns "860000000" sol into 0.86 SOL.
var currencyDecimals = func() map[string]int {
	m := map[string]int{"sol": 9, "eth": 18, "btc": 8, "usdc": 6}
	for _, c := range strings.Fields(`bif clp djf gnf isk jpy kmf krw pyg rwf ugx uyi vnd vuv xaf xof xpf`) {
		m[c] = 0
	}
	for _, c := range strings.Fields(`bhd iqd jod kwd lyd omr tnd`) {
		m[c] = 3
	}
	for _, c := range strings.Fields(`clf uyw`) {
		m[c] = 4
	}
	for _, c := range strings.Fields(`aed afn all amd ang aoa ars aud awg azn bam bbd bdt bgn bmd bnd
		bob bov brl bsd btn bwp byn bzd cad cdf che chf chw cny cop cou crc cup cve czk dkk dop dzd
		egp ern etb eur fjd fkp gbp gel ghs gip gmd gtq gyd hkd hnl htg huf idr ils inr irr jmd kes
		kgs khr kpw kyd kzt lak lbp lkr lrd lsl mad mdl mga mkd mmk mnt mop mru mur mvr mwk mxn mxv
		myr mzn nad ngn nio nok npr nzd pab pen pgk php pkr pln qar ron rsd rub sar sbd scr sdg sek
		sgd shp sle sos srd ssp stn svc syp szl thb tjs tmt top try ttd twd tzs uah usd usn uyu uzs
		ved ves xcd xcg yer zar zmw zwg`) {
		m[c] = 2
	}
	return m
}()

// CurrencyDecimals reports the decimals of a lowercase currency code, and
// whether hookline knows the currency at all.
func CurrencyDecimals(code string) (int, bool) {
	d, ok := currencyDecimals[code]
	return d, ok
}

// FormatMajor renders an amount of minor units (a string of digits) in major
// units with trailing zeros dropped: ("860000000", 9) → "0.86", ("6700", 2) →
// "67", ("5", 0) → "5".
func FormatMajor(minor string, decimals int) string {
	if decimals == 0 {
		return minor
	}
	if len(minor) <= decimals {
		minor = strings.Repeat("0", decimals-len(minor)+1) + minor
	}
	whole, frac := minor[:len(minor)-decimals], strings.TrimRight(minor[len(minor)-decimals:], "0")
	if frac == "" {
		return whole
	}
	return whole + "." + frac
}
